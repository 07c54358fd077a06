"""Byte level: exact next-byte probabilities from a token model, token healing, and ensembles across tokenizers."""

from .ensemble import FITTED as FITTED
from .ensemble import MIXES as MIXES
from .ensemble import ByteEnsemble as ByteEnsemble
from .ensemble import EnsembleResult as EnsembleResult
from .ensemble import evaluate_ensemble as evaluate_ensemble
from .ensemble import fit_ensemble_weights as fit_ensemble_weights
from .ensemble import fit_weights as fit_weights
from .ensemble import mix_byte_bits as mix_byte_bits
from .ensemble import mix_scores as mix_scores
from .model import BEAM as BEAM
from .model import THRESHOLD as THRESHOLD
from .model import WINDOW as WINDOW
from .model import BeamStats as BeamStats
from .model import ByteLevelModel as ByteLevelModel
from .model import ByteScore as ByteScore
from .model import ByteState as ByteState
from .model import Exactness as Exactness
from .model import exactness as exactness
from .run import ByteBpbResult as ByteBpbResult
from .run import Generation as Generation
from .run import evaluate_bytes as evaluate_bytes
from .run import generate_bytes as generate_bytes
from .run import generate_tokens as generate_tokens
from .vocab import ByteVocab as ByteVocab
