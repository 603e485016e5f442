"""`edgebranchy plan`: where the side exits should go, chosen from measurements (docs/internals.md, "plan").

`file` (the plan file, standard library only) is what `train --plan` reads; the rest needs torch.
"""
