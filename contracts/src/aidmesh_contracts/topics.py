"""Topic names. The full catalogue (types, producers, consumers, sensitivity) is in catalogue.py."""

REGISTRATION_INTAKE = "aidmesh.registration.intake.v1"
HOUSEHOLD = "aidmesh.registration.household.v1"
NEED = "aidmesh.assessment.need.v1"
REFERRAL = "aidmesh.referral.v1"
SHELTER_CASE = "aidmesh.shelter.case.v1"
HEALTH_VISIT = "aidmesh.health.visit.v1"
PROTECTION_CASE = "aidmesh.protection.case.v1"
ASSISTANCE_DELIVERED = "aidmesh.assistance.delivered.v1"
CASH_PAYMENT = "aidmesh.cash.payment.v1"

DLQ_SUFFIX = ".dlq"
#: Dead-letter topics have one partition (order across partitions is lost anyway) and keep
#: records 30 days. The runtime creates them so; a test in ops checks the two agree.
DLQ_PARTITIONS = 1
DLQ_RETENTION_MS = 30 * 24 * 3600 * 1000


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of a topic: the original record, untouched, plus reason headers."""
    return topic + DLQ_SUFFIX
