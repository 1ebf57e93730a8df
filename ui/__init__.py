"""Front ends: they arrange widgets and call core/ and training/, nothing more."""
