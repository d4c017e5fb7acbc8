"""The models of the quantization benchmark (bench/quant_bench.py) in PyTorch:
the reference MLP and CNN and the ResNet-style net of torch_models.py, plus
CNNBN, the twin of leanai's `cnn-bn` preset (src/leanai/nn/models.cpp):
conv32-BN-ReLU-pool, conv64-BN-ReLU-pool (3x3, padding 1, no conv bias),
fc256 (no bias)-BN-ReLU-dropout 0.3, fc10.

Every tool runs the same PyTorch-trained weights (leanai imports the ONNX
file PyTorch exports), so differences come from quantization alone; leanai's
own `resnet` preset (ResNet-8) has another shape.
"""
import torch.nn as nn
import torch.nn.functional as F

from torch_models import CNN, MLP, ResNetS


class CNNBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64)
        self.fc1, self.bn3 = nn.Linear(64 * 7 * 7, 256, bias=False), nn.BatchNorm1d(256)
        self.drop, self.fc2 = nn.Dropout(0.3), nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(self.drop(F.relu(self.bn3(self.fc1(x.flatten(1))))))


MODELS = {"mlp": MLP, "cnn": CNN, "cnn-bn": CNNBN, "resnet": ResNetS}
