//! torchvision backbones (alexnet, vgg, squeezenet1_1) as LPIPS taps them. Being written.
