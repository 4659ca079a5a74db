"""The GPU as the host sees it: NVML readings (`monitor`) and the memory left
beside each engine's budget (`margin`)."""
