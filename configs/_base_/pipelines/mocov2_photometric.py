# MoCo v2's photometric view augmentation, written once for every config
# that colours its views (Chen et al., "Improved Baselines with Momentum
# Contrastive Learning", 2020; values as in mmpretrain 1.2.0
# configs/_base_/datasets/imagenet_bs32_mocov2.py). The methods' own code
# uses the same recipe: PLRC [data] (PLRC/datasets/imagenet.py), DETReg
# get_query_transforms and ProSeCo's strong view (assumed); CCOP with
# saturation 0.2 (coco_regions_2view.py). A view pipeline takes the whole
# block, or its first two entries where a config has no blur.
mocov2_photometric = [
    dict(
        type='mmpretrain.RandomApply',
        transforms=[
            dict(
                type='mmpretrain.ColorJitter',
                brightness=0.4,  # MoCo v2: ColorJitter(0.4, 0.4, 0.4, 0.1)
                contrast=0.4,
                saturation=0.4,
                hue=0.1)
        ],
        prob=0.8),  # MoCo v2: p=0.8
    dict(
        type='mmpretrain.RandomGrayscale',
        prob=0.2,  # MoCo v2: p=0.2
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.2989)),  # mmpretrain mocov2 (BGR)
    dict(
        type='mmpretrain.GaussianBlur',
        magnitude_range=(0.1, 2.0),  # MoCo v2: sigma in (0.1, 2)
        magnitude_std='inf',  # uniform sigma (mmpretrain mocov2)
        # MoCo v2: p=0.5; PIL's radius is sigma (kernel ~ 6 sigma)
        prob=0.5),
]
