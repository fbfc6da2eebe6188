# ProSeCo: proposal-contrastive pre-training of Deformable DETR on COCO.
# Bouniot et al., ICLR 2023. ProSeCo's code is not public: every value marked
# "assumed" is our choice (DETReg's or SCE's setting; every point of the
# fidelity audit is a row of docs/fidelity.md, section ProSeCo / DETReg);
# "DETReg" = github amirbar/DETReg @a4b6363, "SCE" = github
# CEA-LIST/SCE sce/models/siamese/sce.py, "mmdet" = mmdet 3.3.0
# configs/deformable_detr/deformable-detr_r50_16xb2-50e_coco.py.
_base_ = [
    '../_base_/datasets/coco_regions_weak-strong.py',
    '../_base_/schedules/adamw_detr_50e.py', '../_base_/default_runtime.py'
]

num_queries = 300  # DETReg; ProSeCo paper (unverified)
embed_dims = 256  # mmdet / Deformable DETR
# DETReg's SwAV R-50 (800 epochs), loaded as DETReg does (DETReg
# models/backbone.py:120-123). The file is a plain state dict whose keys
# carry DDP's "module." prefix (plus SwAV's projection_head/prototypes,
# reported as unexpected and ignored); mmengine's load_checkpoint strips
# "module." by default (revise_keys), and the remaining names (conv1, bn1,
# layer1.0.conv1, ...) are those of mmdet's ResNet, so no converter is needed.
swav_checkpoint = \
    'https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar'

detector = dict(
    type='mmdet.DeformableDETR',
    num_queries=num_queries,
    num_feature_levels=4,  # mmdet / DETReg
    with_box_refine=False,  # mmdet base Deformable DETR (DETReg default)
    as_two_stage=False,
    backbone=dict(
        type='mmdet.ResNet',
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),  # mmdet
        # DETReg freezes the SwAV backbone (--lr_backbone 0); ProSeCo keeps it
        # frozen too (assumed: ProSeCo's code is not public, docs/fidelity.md):
        # frozen_stages=4 freezes the stem and all four stages. For an
        # unfrozen backbone set frozen_stages=1 and add
        # custom_keys={'detector.backbone': dict(lr_mult=0.1)} (mmdet).
        frozen_stages=4,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        # ProSeCo/DETReg start from a self-supervised backbone: SwAV (DETReg,
        # and ProSeCo's DETReg-comparable runs) by default. ProSeCo's best
        # runs use an object-level backbone (SCRL): see the
        # *_ccop-backbone_coco.py / *_plrc-backbone_coco.py variants. A fully
        # frozen backbone without a Pretrained init_cfg is refused by ProSeCo.
        init_cfg=dict(type='Pretrained', checkpoint=swav_checkpoint)),
    neck=dict(
        type='mmdet.ChannelMapper',
        in_channels=[512, 1024, 2048],
        kernel_size=1,
        out_channels=embed_dims,
        act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32),
        num_outs=4),  # mmdet
    encoder=dict(
        num_layers=6,  # Deformable DETR / DETReg
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims,
                feedforward_channels=1024,  # DETReg dim_feedforward 1024
                ffn_drop=0.1))),
    decoder=dict(
        num_layers=6,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed_dims,
                num_heads=8,
                dropout=0.1,
                batch_first=True),
            cross_attn_cfg=dict(embed_dims=embed_dims, batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims, feedforward_channels=1024,
                ffn_drop=0.1)),
        post_norm_cfg=None),
    positional_encoding=dict(num_feats=128, normalize=True, offset=-0.5),
    bbox_head=dict(
        type='mmdet.DeformableDETRHead',
        num_classes=1,  # class-agnostic "object" (DETReg)
        sync_cls_avg_factor=True,
        # Localisation on the selective-search boxes = L_coord + L_giou only
        # (ProSeCo Fig. 2 names no objectness term): the focal objectness
        # loss is kept in the graph with weight 0 (so DDP sees every
        # parameter used) and the class cost is left out of the matching
        # below. DETReg's full set (focal objectness x2 + class cost 2) is
        # detreg_deformable-detr_r50_coco.py: set loss_cls.loss_weight=2.0
        # and add dict(type='mmdet.FocalLossCost', weight=2.0) to match_costs.
        # L1 5 / GIoU 2: DETReg (= Deformable DETR).
        loss_cls=dict(
            type='mmdet.FocalLoss',
            use_sigmoid=True,
            gamma=2.0,
            alpha=0.25,  # DETReg focal alpha 0.25
            loss_weight=0.0),
        loss_bbox=dict(type='mmdet.L1Loss', loss_weight=5.0),
        loss_iou=dict(type='mmdet.GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        assigner=dict(
            type='mmdet.HungarianAssigner',
            # matching costs L1 5 / GIoU 2 (DETReg's, without its class cost
            # 2: no objectness in ProSeCo's localisation, see loss_cls)
            match_costs=[
                dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=100))

model = dict(
    type='ProSeCo',
    detector=detector,
    # projection of the decoder query embeddings; assumed 2-layer MLP
    # 256-256-256 (ProSeCo's projector is not public)
    neck=dict(
        type='ObjectEmbeddingNeck',
        in_channels=embed_dims,
        hid_channels=256,
        out_channels=256,
        num_layers=2),
    head=dict(
        type='ProSeCoHead',
        # teacher proposals -> student predictions; weights assumed: feature
        # similarity 2 (in place of DETR's class cost 2), L1 5, GIoU 2 (DETR)
        matcher=dict(
            type='ProposalHungarianMatcher',
            feat_weight=2.0,
            l1_weight=5.0,
            giou_weight=2.0),
        # all N queries are proposals (assumed); a top-k by objectness needs
        # loss_cls.loss_weight > 0 (no objectness is trained otherwise)
        num_proposals=None,
        loss=dict(
            type='LocSCELoss',
            coeff=0.5,  # lambda_SCE: SCE default
            student_temperature=0.1,  # tau: SCE default (SCE `temp`)
            # tau_m (assumed: ProSeCo's is not public): 0.05 = SCE's class
            # default `temp_m` (sce/models/siamese/sce.py) and its CIFAR-10
            # run; SCE's configs/model/siamese/sce/default.yaml has 0.04, its
            # ImageNet run (resnet50_imagenet.yaml) 0.07
            teacher_temperature=0.05,
            pos_iou_thr=0.5,  # delta: best in the ProSeCo paper's ablation
            # the two points the ProSeCo poster leaves open (see the
            # docstring of mmregion/models/losses/loc_sce_loss.py): target
            # rows as printed (True = SCE's L1 normalisation) and the
            # teacher proposal as the anchor of p'_(in, j sigma_n(m))
            # ('student' = SCE's orientation)
            normalize_target=False,
            anchor='teacher',
            # negatives from this GPU's batch (True: the global batch; the
            # paper's N_b is unverified)
            gather_negatives=False,
            loss_weight=1.0)),  # assumed (DETReg's embedding-loss weight 1)
    loc_loss=True,  # DETReg-style localisation on selective-search boxes
    # mmengine convention: teacher = (1 - m) * teacher + m * student, so
    # 0.001 is MoCo's 0.999, constant: SCE configs/model/siamese/sce/
    # default.yaml (initial_momentum 0.999, scheduler_momentum constant);
    # ProSeCo's value is not public (assumed). SCE's ImageNet run
    # (configs/run/pretrain/sce/resnet50/resnet50_imagenet.yaml: 0.99 -> 1
    # by cosine): momentum=0.01 and custom_hooks=[dict(
    # type='CosineTeacherMomentumHook')] (docs/fidelity.md).
    momentum=0.001,
    teacher_view=0,  # weak view -> teacher (ProSeCo)
    student_view=1,  # strong view -> student (ProSeCo)
    data_preprocessor=dict(
        type='mmpretrain.SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))  # ImageNet statistics
