"""The client protocol shared by the servers and the clerk (see ../shared/DESIGN.md: kvapi)."""
