"""LinkedIn publishing: the posting and draft-generation assets (thin) and their engines."""
