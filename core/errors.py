"""Errors that carry a message meant for the user: what is wrong and what to do."""


class StudioError(Exception):
    """A problem the user can act on. The CLI prints it and exits 2; pages show st.error."""
