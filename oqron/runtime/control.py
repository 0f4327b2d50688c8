"""Control-flow exceptions of the runtime. They derive from ``BaseException`` so that a
handler's ``except Exception`` cannot swallow them."""


class HardTimeout(BaseException):
    """The master interrupted a job that ran past its hard timeout."""


class StopChild(BaseException):
    """The child was told to stop while it waited for a job."""
