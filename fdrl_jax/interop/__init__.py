"""The reference PyTorch implementation: its networks (`reference_nets`, needs torch), its
state-dict layout <-> our params (`state_dict`, numpy only)."""
