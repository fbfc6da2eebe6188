from .ccop_curriculum_hook import CCOPCurriculumHook
from .checkpoint_hook import SafeCheckpointHook
from .plrc_teacher_temp_hook import PLRCTeacherTempHook
from .resume_lr_hook import ResumeLrHook
from .rng_state_hook import RNGStateHook
from .teacher_momentum_hook import CosineTeacherMomentumHook

__all__ = [
    'CCOPCurriculumHook', 'SafeCheckpointHook', 'PLRCTeacherTempHook',
    'ResumeLrHook', 'RNGStateHook', 'CosineTeacherMomentumHook'
]
