"""A package that exports a web API through skitai ("Export API From Your Module Through Skitai")."""
