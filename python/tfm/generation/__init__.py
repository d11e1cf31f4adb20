"""Generation: GenerationConfig, the processor chain, and generate / stream / score."""
from .config import GenerationConfig
from .utils import BeamTree, GenerateOutput, GenerationMixin, ScoreOutput, StageTrace, StepTrace

__all__ = ["GenerationConfig", "GenerationMixin", "GenerateOutput", "ScoreOutput", "StepTrace", "StageTrace",
           "BeamTree"]
