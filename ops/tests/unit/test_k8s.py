"""Kubernetes manifests: generated, current, valid against offline schemas, and complete.

Core kinds are validated by `kubernetes-validate` (the Kubernetes API's own JSON Schemas,
shipped in the package, strict: unknown fields refused) for one pinned Kubernetes version.
KafkaTopic is validated against schemas/strimzi-kafkatopic-v1beta2.schema.json (see its
`$comment` for where it comes from).
"""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from aidmesh_contracts import asyncapi
from aidmesh_contracts.catalogue import CATALOGUE
from aidmesh_contracts.topics import DLQ_PARTITIONS, DLQ_RETENTION_MS
from aidmesh_ops.bootstrap import SERVICES
from aidmesh_ops.k8s import (
    HTTP_PORTS,
    K8S_DIR,
    PLACEHOLDERS,
    SECRETS_MOUNT,
    STRIMZI_CLUSTER,
    secret_files,
    stale_files,
)
from aidmesh_runtime.settings import ServiceSettings, is_secret
from aidmesh_runtime.topics import wanted_topics
from jsonschema import Draft202012Validator, ValidationError

KUBERNETES_VERSION = "1.33"
STRIMZI_SCHEMAS = {
    kind: Path(__file__).parent / "schemas" / f"strimzi-{kind.lower()}-v1beta2.schema.json"
    for kind in ("KafkaTopic", "KafkaUser")
}

Resource = dict[str, Any]


def committed_resources() -> list[Resource]:
    return [
        doc
        for path in sorted(K8S_DIR.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc
    ]


RESOURCES = committed_resources()
TOPICS = {r["metadata"]["name"]: r for r in RESOURCES if r["kind"] == "KafkaTopic"}


def of_kind(kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in RESOURCES if r["kind"] == kind}


def validate(resource: Resource) -> None:
    """Raise if the resource is not valid for its kind."""
    if resource["kind"] in STRIMZI_SCHEMAS:
        schema = json.loads(STRIMZI_SCHEMAS[resource["kind"]].read_text(encoding="utf-8"))
        Draft202012Validator(schema).validate(resource)
    else:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def resource_id(resource: Resource) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


# ---- current and valid -----------------------------------------------------------------


def test_the_committed_manifests_are_current() -> None:
    assert stale_files() == [], "run `python -m aidmesh_ops.k8s write`"


def test_stale_files_notices_a_hand_edited_manifest(tmp_path: Path) -> None:
    for path in K8S_DIR.rglob("*.yaml"):
        copy_ = tmp_path / path.relative_to(K8S_DIR)
        copy_.parent.mkdir(parents=True, exist_ok=True)
        copy_.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert stale_files(tmp_path) == []
    edited = tmp_path / "shelter.yaml"
    edited.write_text(edited.read_text(encoding="utf-8").replace("replicas: 2", "replicas: 9"))

    assert stale_files(tmp_path) == ["shelter.yaml"]


@pytest.mark.parametrize("resource", RESOURCES, ids=resource_id)
def test_every_manifest_is_valid_for_its_kind(resource: Resource) -> None:
    validate(resource)


def test_the_kustomization_applies_every_manifest_file() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))

    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}


# ---- the validators reject broken manifests ------------------------------------------------


def _unknown_container_field(r: Resource) -> None:
    r["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"


def _replicas_as_text(r: Resource) -> None:
    r["spec"]["replicas"] = "two"


def _no_selector(r: Resource) -> None:
    del r["spec"]["selector"]


def _probe_without_handler(r: Resource) -> None:
    r["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"] = {"path": "/x"}


@pytest.mark.parametrize(
    "breaks", [_unknown_container_field, _replicas_as_text, _no_selector, _probe_without_handler]
)
def test_a_broken_deployment_is_rejected(breaks: Any) -> None:
    deployment = copy.deepcopy(of_kind("Deployment")["aidmesh-shelter"])
    breaks(deployment)

    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


@pytest.mark.parametrize(
    "change",
    [
        {"spec": {"partitions": 0, "replicas": 3}},
        {"spec": {"partitions": 6, "replicas": 3, "retention": "30d"}},
        {"spec": {"partitions": 6, "replicas": "3"}},
        {"metadata": {"name": "AidMesh_Topic"}},
        {"apiVersion": "kafka.strimzi.io/v1alpha1"},
    ],
)
def test_a_broken_kafka_topic_is_rejected(change: Resource) -> None:
    topic = copy.deepcopy(TOPICS["aidmesh.registration.household.v1"]) | change

    with pytest.raises(ValidationError):
        validate(topic)


# ---- complete and consistent with the code -------------------------------------------------


def test_every_catalogue_topic_and_dead_letter_topic_has_a_kafka_topic() -> None:
    assert set(TOPICS) == {name for t in CATALOGUE for name in (t.name, t.dlq)}


@pytest.mark.parametrize("wanted", wanted_topics(), ids=lambda t: t.name)
def test_each_kafka_topic_is_configured_as_the_local_bootstrap_creates_it(wanted: Any) -> None:
    topic = TOPICS[wanted.name]

    assert topic["metadata"]["labels"]["strimzi.io/cluster"] == STRIMZI_CLUSTER
    assert topic["spec"]["partitions"] == wanted.num_partitions
    assert topic["spec"]["replicas"] == 3
    config = {k: str(v) for k, v in topic["spec"]["config"].items()}
    assert config.items() >= wanted.topic_configs.items()


def test_the_restricted_topic_is_labelled_restricted() -> None:
    labels = TOPICS["aidmesh.protection.case.v1"]["metadata"]["labels"]

    assert labels["aidmesh.org/sensitivity"] == "restricted"


def test_the_asyncapi_dead_letter_facts_match_what_the_runtime_creates() -> None:
    dlqs = [t for t in wanted_topics() if t.name.endswith(".dlq")]

    assert {t.num_partitions for t in dlqs} == {DLQ_PARTITIONS}
    assert {t.topic_configs["retention.ms"] for t in dlqs} == {str(DLQ_RETENTION_MS)}
    document = asyncapi.build_document()
    for t in wanted_topics():
        binding = document["channels"][asyncapi.channel_id(t.name)]["bindings"]["kafka"]
        assert binding["partitions"] == t.num_partitions
        assert str(binding["topicConfiguration"]["retention.ms"]) == t.topic_configs["retention.ms"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_a_deployment_and_a_service_on_its_port(service: str) -> None:
    deployment = of_kind("Deployment")[f"aidmesh-{service}"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    svc = of_kind("Service")[f"aidmesh-{service}"]

    assert container["ports"][0]["containerPort"] == HTTP_PORTS[service]
    assert svc["spec"]["ports"][0]["port"] == HTTP_PORTS[service]
    assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_configured_by_environment_with_its_dsn_from_a_secret_file(
    service: str,
) -> None:
    pod = of_kind("Deployment")[f"aidmesh-{service}"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    config = of_kind("ConfigMap")["aidmesh-config"]["data"]

    assert container["envFrom"] == [{"configMapRef": {"name": "aidmesh-config"}}]
    assert "AIDMESH_KAFKA_BOOTSTRAP" in config
    assert config["AIDMESH_HTTP_HOST"] == "0.0.0.0"
    assert env[f"AIDMESH_{service.upper()}_DB_DSN_FILE"] == {
        "name": f"AIDMESH_{service.upper()}_DB_DSN_FILE",
        "value": f"{SECRETS_MOUNT}/dsn",
    }
    [volume] = [v for v in pod["volumes"] if v["name"] == "secrets"]
    assert {
        "secret": {"name": f"aidmesh-{service}-db", "items": [{"key": "dsn", "path": "dsn"}]}
    } in (volume["projected"]["sources"])
    assert env[f"AIDMESH_{service.upper()}_HTTP_PORT"]["value"] == str(HTTP_PORTS[service])


# ---- secrets as files ----------------------------------------------------------------------


def settings_of(service: str) -> type[Any]:
    module = importlib.import_module(f"aidmesh_{service}.settings")
    [settings] = [
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, ServiceSettings) and c is not ServiceSettings
    ]
    return settings


@pytest.mark.parametrize("service", SERVICES)
def test_no_secret_reaches_a_pod_as_an_environment_value(service: str) -> None:
    (container,) = of_kind("Deployment")[f"aidmesh-{service}"]["spec"]["template"]["spec"][
        "containers"
    ]
    settings = settings_of(service)
    prefix = f"AIDMESH_{service.upper()}_"

    for variable in container["env"]:
        assert "valueFrom" not in variable, f"{variable['name']} from a Secret: mount it"
        setting = variable["name"].removeprefix(prefix).lower()
        if setting.endswith("_file"):
            # Every *_FILE variable names a secret setting of the service, in the mount.
            assert is_secret(settings.model_fields[setting.removesuffix("_file")]), setting
            assert variable["value"].startswith(SECRETS_MOUNT + "/")
        else:
            assert not is_secret(settings.model_fields[setting]), f"{setting} is a secret"


@pytest.mark.parametrize("service", SERVICES)
def test_every_secret_file_is_mounted_readable_by_the_service_only(service: str) -> None:
    pod = of_kind("Deployment")[f"aidmesh-{service}"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "secrets"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "secrets"]
    mounted = {
        f"{SECRETS_MOUNT}/{item['path']}"
        for source in volume["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    files = {e["value"] for e in container["env"] if e["name"].endswith("_FILE")}

    assert mount == {"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": True}
    assert volume["projected"]["defaultMode"] & 0o007 == 0, "every user could read the secrets"
    assert files == mounted
    assert len(files) == len(secret_files(service))


def test_the_services_with_a_key_read_it_from_a_mounted_secret() -> None:
    env = {
        service: {
            e["name"]
            for e in of_kind("Deployment")[f"aidmesh-{service}"]["spec"]["template"]["spec"][
                "containers"
            ][0]["env"]
        }
        for service in SERVICES
    }

    assert "AIDMESH_PROTECTION_DATA_KEY_FILE" in env["protection"]
    assert "AIDMESH_REGISTRATION_KEK_FILE" in env["registration"]
    assert "AIDMESH_HEALTH_CLINICAL_KEY_FILE" in env["health"]


def placeholder_resources() -> list[Resource]:
    text = (K8S_DIR / PLACEHOLDERS).read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_the_placeholder_secrets_are_valid_hold_no_values_and_are_never_applied() -> None:
    placeholders = placeholder_resources()
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    mounted = {
        source["secret"]["name"]
        for deployment in of_kind("Deployment").values()
        for volume in deployment["spec"]["template"]["spec"]["volumes"]
        if volume["name"] == "secrets"
        for source in volume["projected"]["sources"]
    }

    assert {p["metadata"]["name"] for p in placeholders} == mounted
    for placeholder in placeholders:
        validate(placeholder)
        assert placeholder["kind"] == "Secret"
        assert not {"data", "stringData"} & set(placeholder), "a placeholder holds a value"
        assert "--from-file=" in placeholder["metadata"]["annotations"]["aidmesh.org/create-with"]
    assert not [r for r in kustomization["resources"] if "secret" in r]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_probed_and_runs_unprivileged(service: str) -> None:
    pod = of_kind("Deployment")[f"aidmesh-{service}"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]) == {"requests", "limits"}


def test_the_ports_are_the_services_own_defaults() -> None:
    from aidmesh_audit.settings import AuditSettings
    from aidmesh_cash.settings import CashSettings
    from aidmesh_health.settings import HealthSettings
    from aidmesh_protection.settings import ProtectionSettings
    from aidmesh_registration.settings import RegistrationSettings
    from aidmesh_shelter.settings import ShelterSettings

    defaults = {
        s.service_name: s.default_http_port
        for s in (
            RegistrationSettings,
            ShelterSettings,
            HealthSettings,
            ProtectionSettings,
            CashSettings,
            AuditSettings,
        )
    }
    assert defaults == HTTP_PORTS


# ---- Kafka users: the same grants as the local broker --------------------------------


def test_each_kafka_user_holds_exactly_the_grants_the_catalogue_implies() -> None:
    from aidmesh_ops.kafka_acl import grants, principals

    users = of_kind("KafkaUser")
    assert sorted(users) == principals()
    for name, user in users.items():
        held = sorted(
            (acl["resource"]["type"], acl["resource"]["name"], acl["resource"]["patternType"], op)
            for acl in user["spec"]["authorization"]["acls"]
            for op in acl["operations"]
        )
        wanted = sorted(
            (
                g.resource,
                g.name,
                "prefix" if g.pattern == "prefixed" else "literal",
                g.operation.capitalize(),
            )
            for g in grants()
            if g.principal == name
        )
        assert held == wanted, name
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}


def test_only_audit_may_read_the_protection_topic_on_the_cluster() -> None:
    from aidmesh_contracts.topics import PROTECTION_CASE

    readers = {
        name
        for name, user in of_kind("KafkaUser").items()
        for acl in user["spec"]["authorization"]["acls"]
        if acl["resource"]["name"] == PROTECTION_CASE and "Read" in acl["operations"]
    }
    assert readers == {"audit"}


def test_services_authenticate_over_tls_with_their_own_kafka_user() -> None:
    config = of_kind("ConfigMap")["aidmesh-config"]["data"]
    assert config["AIDMESH_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    for service in SERVICES:
        pod = of_kind("Deployment")[f"aidmesh-{service}"]["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert env[f"AIDMESH_{service.upper()}_KAFKA_PASSWORD_FILE"].endswith("/password")
        mounted = [
            source["secret"]
            for volume in pod["volumes"]
            if "projected" in volume
            for source in volume["projected"]["sources"]
        ]
        # The Secret Strimzi's User Operator makes for the service's KafkaUser.
        assert {"name": service, "items": [{"key": "password", "path": "password"}]} in mounted


def test_services_verify_bearer_tokens_with_public_keys_from_a_configmap() -> None:
    config = of_kind("ConfigMap")["aidmesh-config"]["data"]
    for service in SERVICES:
        pod = of_kind("Deployment")[f"aidmesh-{service}"]["spec"]["template"]["spec"]
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert mounts["auth-keys"] == config["AIDMESH_AUTH_PUBLIC_KEYS_FILE"]
        assert volumes["auth-keys"]["configMap"] == {"name": "aidmesh-auth-public-keys"}
