"""Overhead figures of the fit estimate, and where each comes from."""

from __future__ import annotations

from llmhost.units import GIB, MIB

# CUDA context of one process (driver state, kernel images, cuBLAS workspace). Published
# figures range from 128-256 MiB with CUDA 12's lazy module loading (invoke-ai/InvokeAI
# PR #9447, "a CUDA context (~128-256 MiB of VRAM per GPU, size varies by GPU/driver)")
# to 781 MB for an eagerly loaded PyTorch context (pytorch/pytorch#34323). vLLM adds its
# own kernels (FlashAttention, Marlin, Triton); 512 MiB is the middle, on the safe side of
# the CUDA 12 figure. Each vLLM engine runs in its own process and pays it once.
CUDA_CONTEXT_BYTES = 512 * MIB
# CUDA graphs captured at start (off with enforce_eager). vLLM 0.32 profiles them
# (vllm/v1/worker/gpu_worker.py, `profile_cudagraph_memory`); measured 0.48 GiB for
# Qwen2.5-7B-Instruct-AWQ on an RTX 4080 16 GB under WSL2, vLLM 0.26, default capture
# sizes (akiyax/kvcache-lab, docs/phase1-baseline.md: "0.48 CUDAGraph").
CUDA_GRAPH_BYTES = 512 * MIB
# Memory outside torch's allocator inside the engine (NCCL, cuBLAS handles): 0.06 GiB in
# the same measurement ("0.06 non-torch").
NON_TORCH_BYTES = 64 * MIB
# The profile run (vllm/v1/worker/gpu_model_runner.py, `profile_run`) runs one forward
# pass of max_num_batched_tokens tokens, then the sampler on max_num_seqs rows of logits
# (`_dummy_sampler_run`: fp32 logits, top-k/top-p sorting: values, int64 indices,
# probabilities). Its peak is what vLLM reserves for activations. Per token of the
# forward pass: the residual stream, normed input and attention in/out (~4 x hidden) and
# the MLP's gate/up and activation (3 x intermediate) at the model dtype; per logit of
# the sampler: 20 bytes (4 fp32 + 8 int64 + 4 fp32 + 4 fp32). For Qwen2.5-7B at vLLM's
# defaults this gives 0.28 + 0.73 = 1.00 GiB against the 1.04 GiB "peak activation"
# measured in the run above.
SAMPLER_BYTES_PER_LOGIT = 20
ACTIVATION_HIDDEN_FACTOR = 4
ACTIVATION_INTERMEDIATE_FACTOR = 3
# vLLM's defaults for a GPU under 70 GiB when not built by the `LLM` class
# (vllm/engine/arg_utils.py, `get_batch_defaults`; vllm/config/scheduler.py:
# DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048) and DEFAULT_MAX_NUM_SEQS = 256.
DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048
DEFAULT_MAX_NUM_SEQS = 256
# vLLM's default KV block size (vllm/config/cache.py, DEFAULT_BLOCK_SIZE). The KV cache is
# allocated in whole blocks, and the block pool holds one null block back
# (kv_cache_utils.py, `_pool_bytes_per_block` in `check_enough_kv_cache_memory`).
DEFAULT_BLOCK_SIZE = 16

# Diffusion: the VAE decoder's last up-blocks work at full resolution with 128 channels
# (SD3/SDXL AutoencoderKL, block_out_channels[0] = 128); about six such fp16 feature maps
# are alive at once at the peak (resnet input, two convolutions, the norm, the skip, the
# upsampled output). enable_tiling decodes 512x512 tiles instead.
VAE_LIVE_MAPS = 6
VAE_CHANNELS = 128
VAE_TILE_EDGE = 512
# The denoiser runs a batch of two (classifier-free guidance); per token and layer a
# transformer keeps ~16 x hidden values alive (q, k, v, attention output, the 4x MLP
# and its activation, residual, norms). SD3 patchifies the 8x-downsampled latent in 2x2
# patches: edge^2 / 256 image tokens, plus ~333 text tokens (77 CLIP + 256 T5).
DIT_LIVE_FACTOR = 16
DIT_TEXT_TOKENS = 333
# Sequential CPU offload moves one submodule at a time to the GPU: the largest single
# layer (T5-XXL's feed-forward, ~0.2 GB in fp16) plus working memory.
SEQUENTIAL_OFFLOAD_BYTES = 1 * GIB

# Verdicts. "fits" leaves a tenth of the card free: on a 16 GB card that is 1.6 GiB, what
# the Windows desktop and WSL2 hold (1-1.5 GB measured with the old stack). "tight"
# fits only on a card nothing else uses. Above the card: "does not fit".
TIGHT_FRACTION = 0.90

# How the engine's retry fits a context vLLM refused (llmhost.backends.vllm.context_fit),
# which `llmhost check` predicts (llmhost.estimate.context).
# The retry asks for this much less than vLLM's estimate: its second profile run may find
# a few MiB less free (on a 7B model 1 MiB is 18 tokens; 2% of 16k tokens is 5-20 MiB).
SLACK = 0.02
# Whole KV blocks: vLLM's default block on GPUs (the CPU backend's 128 is a multiple).
BLOCK_TOKENS = 16
