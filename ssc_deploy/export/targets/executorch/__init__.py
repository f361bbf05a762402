"""ExecuTorch (.pte, XNNPACK): the fp32 export and its int8 (PT2E) export."""
