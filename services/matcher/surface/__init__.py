"""3D surface matching: PLY clouds in, the model's pose in the scene out (PPF, ICP, verification).

Pure: numpy arrays and params in, structs out; the runner (``services.matcher.runners``) reads the
files and hands the stages over. The modules, in pipeline order: ``clouds`` (validation, unit
normals, sampling), ``normals`` (estimation), ``detector`` (PPF training and its cache),
``candidates`` (PPF votes), ``icp`` (refinement), ``verify`` (overlap, the found threshold),
``pipeline`` (the stages), ``render`` (result files).
"""
