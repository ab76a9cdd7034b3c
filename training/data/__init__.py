"""Real-data readers (FOMM layout) and the helpers the world datasets share."""

from training.data.dataset import RealDataConfig, RealPairDataset, RealTripletDataset
from training.data.layout import ClipKind, ClipSource, find_clips
from training.data.sampling import StreamSampler, sample_frame_pair
from training.data.tensors import image_to_tensor, square_resize, tensor_to_image

__all__ = [
    "ClipKind",
    "ClipSource",
    "RealDataConfig",
    "RealPairDataset",
    "RealTripletDataset",
    "StreamSampler",
    "find_clips",
    "image_to_tensor",
    "sample_frame_pair",
    "square_resize",
    "tensor_to_image",
]
