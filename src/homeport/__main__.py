"""`python -m homeport` runs the CLI."""

from homeport.cli import app

app(prog_name="homeport")
