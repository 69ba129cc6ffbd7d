"""The live board page (demo, not deployed): static HTML, CSS and JavaScript, and a tiny server."""
