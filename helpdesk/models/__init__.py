"""Tables and relationships only; rules live in `helpdesk.services`."""

from helpdesk.models.agent import ROLES, Agent, ApiToken
from helpdesk.models.audit import AuditEntry
from helpdesk.models.call import OUTCOMES, Call
from helpdesk.models.channel import KINDS, Channel
from helpdesk.models.chat_session import ChatSession
from helpdesk.models.customer import IDENTITY_KINDS, Customer, Identity
from helpdesk.models.delivery import DELIVERY_STATUSES, Delivery
from helpdesk.models.facts import TicketFact
from helpdesk.models.message import Attachment, Message
from helpdesk.models.rollups import MetricHistogram, MetricRollup
from helpdesk.models.sla import Setting, SlaPolicy
from helpdesk.models.survey import SURVEY_KINDS, Survey
from helpdesk.models.team import Team
from helpdesk.models.ticket import (
                                    PRIORITIES,
                                    PRIORITY_RANK,
                                    QUEUED_STATUSES,
                                    STATUSES,
                                    WORKING_STATUSES,
                                    Ticket,
                                    TicketEvent,
)
from helpdesk.models.urgency_correction import UrgencyCorrection
from helpdesk.models.work_session import WorkSession

__all__ = [
    "AuditEntry", "SURVEY_KINDS", "Survey",
    "OUTCOMES", "Call", "ChatSession", "Setting", "SlaPolicy",
    "ROLES", "Agent", "ApiToken", "KINDS", "Channel", "IDENTITY_KINDS", "Customer", "Identity",
    "DELIVERY_STATUSES", "Delivery", "Attachment", "Message", "PRIORITIES", "PRIORITY_RANK",
    "QUEUED_STATUSES", "WORKING_STATUSES", "STATUSES", "Ticket", "TicketEvent", "WorkSession",
    "Team", "TicketFact",
    "MetricHistogram", "MetricRollup", "UrgencyCorrection",
]
