"""Message traces: the model, the v1 file format, generators and HAR import."""

from wslab.traces.model import DIRECTIONS, PRIORITIES, Direction, Message, Priority, Trace, TraceMeta

__all__ = ["DIRECTIONS", "PRIORITIES", "Direction", "Message", "Priority", "Trace", "TraceMeta"]
