"""Test-wide settings: one torch thread (small networks run far slower on two here)."""

import torch

torch.set_num_threads(1)
