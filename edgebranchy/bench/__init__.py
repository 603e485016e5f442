"""`edgebranchy bench`: the baseline and the BranchyNet measured on the same samples, into one results file.

Submodules are imported on demand; nothing here pulls in an optional library.
"""
