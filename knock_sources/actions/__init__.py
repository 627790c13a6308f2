"""Built-in actions, registered as an internal plugin through ``register_actions``."""

from knock_sources.actions.audiences import AddAudienceMember, RemoveAudienceMember
from knock_sources.actions.objects import DeleteObject, SetObject
from knock_sources.actions.subscriptions import Subscribe, Unsubscribe
from knock_sources.actions.tenants import DeleteTenant, SetTenant
from knock_sources.actions.users import DeleteUser, IdentifyUser
from knock_sources.actions.workflows import CancelWorkflow, TriggerWorkflow
from knock_sources.hookspecs import hookimpl

BUILTIN_ACTIONS = (
    IdentifyUser,
    DeleteUser,
    SetObject,
    DeleteObject,
    SetTenant,
    DeleteTenant,
    Subscribe,
    Unsubscribe,
    AddAudienceMember,
    RemoveAudienceMember,
    CancelWorkflow,
    TriggerWorkflow,
)


@hookimpl
def register_actions():
    """Register the built-in actions."""
    return [action() for action in BUILTIN_ACTIONS]
