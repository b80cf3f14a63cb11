"""The project's typed errors. Their messages are written for a person: the UI shows them as they are."""


class PllavaError(Exception):
    """Base of the project's errors; its message is meant for a person."""


class VideoError(PllavaError):
    """A video or image could not be read (missing, corrupt, unsupported, over a limit)."""


class CheckpointError(PllavaError):
    """A checkpoint could not be found, downloaded or loaded exactly (missing or unexpected weights)."""


class InputError(PllavaError):
    """A request is outside what is allowed (empty question, too long, bad setting)."""


class ResourceError(PllavaError):
    """The server ran out of a resource (GPU memory) for one request; a smaller request may fit."""
