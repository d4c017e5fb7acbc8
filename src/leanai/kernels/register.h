// One registration function per op family; register_builtin_ops calls them all.
#pragma once

namespace leanai {

void register_linear_ops();
void register_conv_ops();
void register_pool_ops();
void register_norm_ops();
void register_activation_ops();
void register_binary_ops();
void register_shape_ops();
void register_softmax_ops();
void register_loss_ops();
void register_dropout_ops();
void register_gate_ops();
void register_moe_ops();
void register_l0_gate_ops();
void register_block_gated_linear_ops();
void register_qlinear_w4_ops();
void register_quantized_ops();

inline void register_builtin_ops() {
  register_linear_ops();
  register_conv_ops();
  register_pool_ops();
  register_norm_ops();
  register_activation_ops();
  register_binary_ops();
  register_shape_ops();
  register_softmax_ops();
  register_loss_ops();
  register_dropout_ops();
  register_gate_ops();
  register_moe_ops();
  register_l0_gate_ops();
  register_block_gated_linear_ops();
  register_qlinear_w4_ops();
  register_quantized_ops();
}

}  // namespace leanai
