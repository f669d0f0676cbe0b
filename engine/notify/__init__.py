"""Notifications away from the terminal: Telegram and a signed webhook (issue 18).

:class:`Notifier` subscribes to the runtime's events and hands notes to one sender thread per
channel; the kill switch, lost protection and engine errors go through a persisted outbox.
"""

from engine.notify.channels import Channel, DeliveryError, TelegramChannel, WebhookChannel
from engine.notify.notes import Note
from engine.notify.notifier import Notifier
from engine.notify.sender import ChannelStatus

__all__ = [
    "Channel",
    "ChannelStatus",
    "DeliveryError",
    "Note",
    "Notifier",
    "TelegramChannel",
    "WebhookChannel",
]
