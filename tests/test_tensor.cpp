// Tensor basics: dtypes and their conversions, views, errors on misuse.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "leanai/core/error.h"
#include "leanai/core/tensor.h"

namespace leanai {
namespace {

TEST(Tensor, SizesOfEveryDtype) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  EXPECT_EQ(dtype_size(DType::i8), 1u);
  EXPECT_EQ(dtype_size(DType::u8), 1u);
  EXPECT_EQ(dtype_size(DType::i32), 4u);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
  for (DType t : {DType::f32, DType::bf16, DType::f16, DType::i8, DType::u8, DType::i32, DType::i64})
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
  EXPECT_THROW(dtype_from_name("F64"), Error);
}

TEST(Tensor, AlignedAndContiguous) {
  Tensor t = Tensor::zeros({3, 5, 7}, DType::bf16);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  EXPECT_EQ(t.strides(), (Shape{35, 7, 1}));
  EXPECT_EQ(t.nbytes(), 3u * 5 * 7 * 2);
  EXPECT_TRUE(t.is_contiguous());
}

TEST(Tensor, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1.0).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  // 1 + 3 * 2^-8 is halfway too, and rounds up to the even 1 + 2^-6.
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(-2.5f)), -2.5f);
}

TEST(Tensor, F16RoundTripAndRange) {
  for (float v : {0.0f, 1.0f, -0.5f, 65504.0f, 6.1035156e-05f}) EXPECT_EQ(f16_to_f32(f32_to_f16(v)), v);
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(1e6f))));
  EXPECT_NEAR(f16_to_f32(f32_to_f16(0.1f)), 0.1f, 1e-4f);
}

TEST(Tensor, ConvertsBetweenDtypes) {
  Tensor f = Tensor::from_vector({4}, {-3.0f, 0.0f, 2.0f, 100.0f});
  Tensor i = f.to(DType::i32);
  EXPECT_EQ(i.dtype(), DType::i32);
  EXPECT_EQ(i.data<int32_t>()[0], -3);
  EXPECT_EQ(i.data<int32_t>()[3], 100);
  Tensor back = i.to(DType::f32);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(back.data<float>()[k], f.data<float>()[k]);
  Tensor h = f.to(DType::f16).to(DType::bf16).to(DType::f32);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(h.data<float>()[k], f.data<float>()[k]);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::from_vector({2, 3}, {0, 1, 2, 3, 4, 5});
  Tensor r = t.reshape({3, -1});
  EXPECT_EQ(r.shape(), (Shape{3, 2}));
  EXPECT_EQ(r.raw(), t.raw());
  Tensor row = t.slice0(1, 2);
  EXPECT_EQ(row.shape(), (Shape{1, 3}));
  EXPECT_EQ(row.data<float>()[0], 3.0f);
  row.data<float>()[0] = 42.0f;
  EXPECT_EQ(t.data<float>()[3], 42.0f);
  Tensor c = t.clone();
  c.data<float>()[0] = -1.0f;
  EXPECT_EQ(t.data<float>()[0], 0.0f);
}

TEST(Tensor, MisuseIsAnError) {
  Tensor t = Tensor::zeros({2, 3});
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_THROW(t.reshape({-1, -1}), Error);
  EXPECT_THROW(t.slice0(1, 3), Error);
  EXPECT_THROW(Tensor::from_vector({2, 2}, {1, 2, 3}), Error);
  EXPECT_THROW(Tensor::empty({2, -1}), Error);
  Tensor other = Tensor::zeros({3, 2});
  EXPECT_THROW(t.copy_from(other), Error);
}

}  // namespace
}  // namespace leanai
