"""The reference models in PyTorch, shared by the benchmarks and the ONNX test
fixtures: the anchors' MLP (784-512-256-10) and CNN (conv32-conv64-fc128-fc10),
and a small ResNet-style net with batch-norm and residual adds.

ResNetS (about 18 MFLOP per 1x28x28 sample): stem conv3x3 1->16 + BN + ReLU,
then three basic blocks (conv-BN-ReLU-conv-BN, + shortcut, ReLU) at 16 channels
28x28, 32 channels 14x14 (stride 2, 1x1 conv+BN shortcut) and 64 channels 7x7
(same), global average pooling, fc 64->10. `width` scales the channels (the
test fixtures use a narrow one, as they do MLP's `hidden` and CNN's `channels`;
the defaults are the reference sizes).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self, hidden=(512, 256)):
        super().__init__()
        h1, h2 = hidden
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, h1), nn.Linear(h1, h2), nn.Linear(h2, 10)

    def forward(self, x):
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class CNN(nn.Module):
    def __init__(self, channels=(32, 64), hidden=128):
        super().__init__()
        c1, c2 = channels
        self.conv1, self.conv2 = nn.Conv2d(1, c1, 3), nn.Conv2d(c1, c2, 3)
        self.fc1, self.fc2 = nn.Linear(c2 * 25, hidden), nn.Linear(hidden, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNetS(nn.Module):
    def __init__(self, width=16, classes=10):
        super().__init__()
        w = width
        self.stem = nn.Conv2d(1, w, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(w)
        self.layer1 = BasicBlock(w, w, 1)
        self.layer2 = BasicBlock(w, 2 * w, 2)
        self.layer3 = BasicBlock(2 * w, 4 * w, 2)
        self.fc = nn.Linear(4 * w, classes)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


MODELS = {"mlp": MLP, "cnn": CNN, "resnet": ResNetS}
