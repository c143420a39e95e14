"""Kubernetes manifests for AidMesh, generated so that they cannot drift from the code.

    python -m aidmesh_ops.k8s write   # regenerate deploy/k8s/*.yaml
    python -m aidmesh_ops.k8s check   # exit 1 if the committed files are stale

- one Deployment + Service per service, configured only by environment variables (the
  same `AIDMESH_*` settings the services read locally), probes on /healthz and /readyz,
  small resource requests, non-root and read-only (Pod Security "restricted");
- one Strimzi `KafkaTopic` per catalogue topic and dead-letter topic, with the partitions
  and configuration `aidmesh infra bootstrap` creates locally (the runtime's
  `wanted_topics()`, itself read from the catalogue) but three replicas;
- one Strimzi `KafkaUser` per principal of the catalogue (SCRAM-SHA-512), holding exactly
  the ACLs `aidmesh kafka apply` grants locally (aidmesh_ops.kafka_acl.grants()); each
  service reads its password from the Secret Strimzi makes for its user, and trusts the
  cluster CA (SASL_SSL on the TLS listener);
- a Namespace, a ConfigMap of the settings shared by every service, and a kustomization;
- secrets as files: each service's secret settings (its database DSN, and the data keys
  in `EXTRA_SECRET_FILES`) are mounted read-only from Kubernetes Secrets under
  /run/secrets/aidmesh and named by `AIDMESH_<SERVICE>_<SETTING>_FILE` (the runtime's convention for secrets,
  aidmesh_runtime.settings), never put in an environment variable or a manifest;
- `secrets/placeholders.yaml`: those Secrets with their keys and no values, to read (not
  in the kustomization: applying them could blank the real ones).

Not generated: the Secrets' values (`kubectl create secret generic ... --from-file`, see
deploy/k8s/README.md), the Strimzi `Kafka` cluster, and the container images.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aidmesh_contracts.catalogue import BY_NAME
from aidmesh_contracts.topics import DLQ_SUFFIX
from aidmesh_runtime.topics import wanted_topics

from .bootstrap import SERVICES
from .kafka_acl import grants, principals

REPO_ROOT = Path(__file__).resolve().parents[3]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
VERSION = "0.1.0"
NAMESPACE = "aidmesh"
STRIMZI_CLUSTER = "aidmesh"
#: Strimzi's TLS listener: SASL/SCRAM over TLS (the local broker is SASL_PLAINTEXT on loopback).
KAFKA_BOOTSTRAP = f"{STRIMZI_CLUSTER}-kafka-bootstrap:9093"
#: Strimzi's cluster CA certificate Secret, mounted so clients can verify the brokers.
KAFKA_CA_SECRET = f"{STRIMZI_CLUSTER}-cluster-ca-cert"
KAFKA_CA_DIR = "/etc/aidmesh/kafka-ca"
#: The public keys that verify HTTP bearer tokens (ADR 0009): not secret, so a ConfigMap of
#: `<kid>.pem` files the operator creates from the issuer's public keys.
AUTH_KEYS_CONFIGMAP = "aidmesh-auth-public-keys"
AUTH_KEYS_DIR = "/etc/aidmesh/auth-keys"
TOPIC_REPLICAS = 3
MIN_INSYNC_REPLICAS = 2
#: The ports each service listens on locally (README, deploy/local/services.sh).
HTTP_PORTS = {
    "registration": 8101,
    "shelter": 8102,
    "health": 8103,
    "protection": 8104,
    "cash": 8106,
    "audit": 8105,
}
RUN_AS = 10001
#: Where a pod finds its secrets, one file per secret setting.
SECRETS_MOUNT = "/run/secrets/aidmesh"
#: Readable by the owner and the pod's group (fsGroup) only: the runtime refuses a secret
#: file every user can read.
SECRET_FILE_MODE = 0o440
PLACEHOLDERS = "secrets/placeholders.yaml"
PLACEHOLDERS_NOTE = (
    "# The Secrets the deployments mount, with their keys and NO values. Not applied by the\n"
    "# kustomization: create each with the `aidmesh.org/create-with` command instead.\n"
)


@dataclass(frozen=True)
class SecretFile:
    """A secret setting of a service, mounted from a key of a Kubernetes Secret."""

    setting: str  # the settings field (`db_dsn`), read from AIDMESH_<SERVICE>_DB_DSN_FILE
    secret: str  # the Kubernetes Secret
    key: str  # its key, also the file's name under SECRETS_MOUNT
    what: str  # what it holds and how to make one, for the placeholder

    def variable(self, service: str) -> str:
        return f"AIDMESH_{service.upper()}_{self.setting.upper()}_FILE"


#: Every secret each service needs besides its database DSN. A new secret setting (a
#: `SecretStr` field) is added here, then `make schemas` regenerates the manifests.
EXTRA_SECRET_FILES: dict[str, tuple[SecretFile, ...]] = {
    "registration": (
        SecretFile(
            "kek",
            "aidmesh-registration-kek",
            "kek",
            "The key-encryption key wrapping every household's data key, `<kek id>:<base64 of"
            " 32 bytes>` (`python -m aidmesh_registration new-kek KEK_ID`). Losing it loses"
            " every household's personal data.",
        ),
    ),
    "health": (
        SecretFile(
            "clinical_key",
            "aidmesh-health-clinical-key",
            "clinical-key",
            "The AES-256-GCM key sealing clinical notes and diagnoses, base64 of 32 random"
            " bytes (`openssl rand -base64 32`).",
        ),
    ),
    "protection": (
        SecretFile(
            "data_key",
            "aidmesh-protection-data-key",
            "data-key",
            "The key sealing narratives and case notes, `<key id>:<base64 of 32 bytes>`"
            " (`python -m aidmesh_protection new-key KEY_ID`).",
        ),
    ),
}


def secret_files(service: str) -> tuple[SecretFile, ...]:
    """The secrets `service` reads from files: its database DSN first."""
    dsn = SecretFile(
        "db_dsn",
        f"aidmesh-{service}-db",
        "dsn",
        f"The DSN of the {service} database, as its own role:"
        f" postgresql://aidmesh_{service}:<password>@<host>:5432/aidmesh_{service}",
    )
    kafka = SecretFile(
        "kafka_password",
        service,
        "password",
        f"The SCRAM password of the Kafka principal {service!r}: Strimzi's User Operator"
        " creates this Secret for the KafkaUser in kafka-users.yaml (do not create it).",
    )
    return (dsn, kafka, *EXTRA_SECRET_FILES.get(service, ()))


GENERATED_NOTE = (
    "# Generated by `python -m aidmesh_ops.k8s write` from the topic catalogue and the\n"
    "# service list. Do not edit by hand.\n"
)


def _labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"aidmesh-{component}",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "aidmesh",
        "app.kubernetes.io/version": VERSION,
    }


def namespace() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                "app.kubernetes.io/part-of": "aidmesh",
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }


def shared_config() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aidmesh-config", "labels": _labels("config")},
        "data": {
            "AIDMESH_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP,
            "AIDMESH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "AIDMESH_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "AIDMESH_KAFKA_SSL_CAFILE": f"{KAFKA_CA_DIR}/ca.crt",
            "AIDMESH_AUTH_PUBLIC_KEYS_FILE": AUTH_KEYS_DIR,
            # In a pod the service must listen on the pod's address, not on loopback.
            "AIDMESH_HTTP_HOST": "0.0.0.0",  # noqa: S104
            "AIDMESH_LOG_LEVEL": "INFO",
            "AIDMESH_LOG_FORMAT": "json",
            "AIDMESH_CONSUMER_OFFSET_RESET": "earliest",
        },
    }


def deployment(service: str) -> dict[str, Any]:
    port = HTTP_PORTS[service]
    prefix = f"AIDMESH_{service.upper()}_"
    container = {
        "name": service,
        "image": f"aidmesh/{service}:{VERSION}",
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", f"aidmesh_{service}"],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": "aidmesh-config"}}],
        "env": [
            {"name": f"{prefix}HTTP_PORT", "value": str(port)},
            *(
                {"name": s.variable(service), "value": f"{SECRETS_MOUNT}/{s.key}"}
                for s in secret_files(service)
            ),
        ],
        # Migrations run at start: give them a minute before liveness counts.
        "startupProbe": _probe("/healthz", period=2, failures=30),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=3),
        "resources": {
            "requests": {"cpu": "50m", "memory": "160Mi"},
            "limits": {"cpu": "500m", "memory": "320Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            {"name": "secrets", "mountPath": SECRETS_MOUNT, "readOnly": True},
            {"name": "kafka-ca", "mountPath": KAFKA_CA_DIR, "readOnly": True},
            {"name": "auth-keys", "mountPath": AUTH_KEYS_DIR, "readOnly": True},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"aidmesh-{service}", "labels": _labels(service)},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": f"aidmesh-{service}"}},
            # Never below the wanted replicas: the outbox relay and consumers hand over.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": _labels(service)},
                "spec": {
                    "automountServiceAccountToken": False,
                    # SIGTERM: stop fetching, finish handlers, flush the relay, commit.
                    "terminationGracePeriodSeconds": 45,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        _secrets_volume(service),
                        {
                            "name": "kafka-ca",
                            "secret": {
                                "secretName": KAFKA_CA_SECRET,
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            },
                        },
                        {"name": "auth-keys", "configMap": {"name": AUTH_KEYS_CONFIGMAP}},
                    ],
                },
            },
        },
    }


def _secrets_volume(service: str) -> dict[str, Any]:
    """One read-only volume of every secret the service reads, one file per key."""
    return {
        "name": "secrets",
        "projected": {
            "defaultMode": SECRET_FILE_MODE,
            "sources": [
                {"secret": {"name": s.secret, "items": [{"key": s.key, "path": s.key}]}}
                for s in secret_files(service)
            ],
        },
    }


def placeholder_secrets() -> list[dict[str, Any]]:
    """Each Secret the deployments mount, with its keys and no value (see the README)."""
    placeholders = []
    for service in SERVICES:
        for s in secret_files(service):
            placeholders.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": s.secret,
                        "namespace": NAMESPACE,
                        "labels": _labels(service),
                        "annotations": {
                            "aidmesh.org/key": s.key,
                            "aidmesh.org/read-as": s.variable(service),
                            "aidmesh.org/holds": s.what,
                            "aidmesh.org/create-with": (
                                f"kubectl -n {NAMESPACE} create secret generic {s.secret}"
                                f" --from-file={s.key}=<file>"
                            ),
                        },
                    },
                    "type": "Opaque",
                }
            )
    return placeholders


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def service_of(service: str) -> dict[str, Any]:
    port = HTTP_PORTS[service]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"aidmesh-{service}", "labels": _labels(service)},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": f"aidmesh-{service}"},
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def kafka_topics() -> list[dict[str, Any]]:
    resources = []
    for wanted in wanted_topics():
        origin = BY_NAME[wanted.name.removesuffix(DLQ_SUFFIX)]
        is_dlq = wanted.name != origin.name
        annotations = (
            {"aidmesh.org/dead-letters-of": origin.name}
            if is_dlq
            else {
                "aidmesh.org/description": origin.description,
                "aidmesh.org/producers": ", ".join(origin.producers),
                "aidmesh.org/consumers": ", ".join(origin.consumers),
            }
        )
        config: dict[str, Any] = {k: _number(v) for k, v in wanted.topic_configs.items()}
        config["min.insync.replicas"] = MIN_INSYNC_REPLICAS
        resources.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaTopic",
                "metadata": {
                    "name": wanted.name,
                    "labels": {
                        "strimzi.io/cluster": STRIMZI_CLUSTER,
                        "app.kubernetes.io/part-of": "aidmesh",
                        "aidmesh.org/sensitivity": str(origin.sensitivity),
                    },
                    "annotations": annotations,
                },
                "spec": {
                    "partitions": wanted.num_partitions,
                    "replicas": TOPIC_REPLICAS,
                    "config": config,
                },
            }
        )
    return resources


def kafka_users() -> list[dict[str, Any]]:
    """One Strimzi KafkaUser per principal, with the ACLs the catalogue implies."""
    resources = []
    for principal in principals():
        acls = [
            {
                "resource": {
                    "type": grant.resource,
                    "name": grant.name,
                    "patternType": "prefix" if grant.pattern == "prefixed" else "literal",
                },
                "operations": [grant.operation.capitalize()],
                "host": "*",
            }
            for grant in grants()
            if grant.principal == principal
        ]
        resources.append(
            {
                "apiVersion": "kafka.strimzi.io/v1beta2",
                "kind": "KafkaUser",
                "metadata": {
                    "name": principal,
                    "labels": {
                        "strimzi.io/cluster": STRIMZI_CLUSTER,
                        "app.kubernetes.io/part-of": "aidmesh",
                    },
                },
                "spec": {
                    "authentication": {"type": "scram-sha-512"},
                    "authorization": {"type": "simple", "acls": acls},
                },
            }
        )
    return resources


def _number(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def manifests() -> dict[str, list[dict[str, Any]]]:
    """File name -> the resources it holds, in apply order."""
    files: dict[str, list[dict[str, Any]]] = {
        "namespace.yaml": [namespace()],
        "config.yaml": [shared_config()],
        "kafka-topics.yaml": kafka_topics(),
        "kafka-users.yaml": kafka_users(),
    }
    for service in SERVICES:
        files[f"{service}.yaml"] = [deployment(service), service_of(service)]
    return files


def kustomization(files: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": files,
    }


def render(resources: list[dict[str, Any]], *, note: str = "") -> str:
    documents = [yaml.safe_dump(r, sort_keys=False, width=100) for r in resources]
    return GENERATED_NOTE + note + "---\n" + "---\n".join(documents)


def expected_files() -> dict[str, str]:
    files = {name: render(resources) for name, resources in manifests().items()}
    # kustomize reads a single document; no separator before it.
    files["kustomization.yaml"] = GENERATED_NOTE + yaml.safe_dump(
        kustomization(list(files)), sort_keys=False
    )
    # Not in the kustomization: see placeholder_secrets.
    files[PLACEHOLDERS] = render(placeholder_secrets(), note=PLACEHOLDERS_NOTE)
    return files


def stale_files(directory: Path = K8S_DIR) -> list[str]:
    expected = expected_files()
    stale = [n for n, text in expected.items() if _read(directory / n) != text]
    orphans = [p.name for p in directory.glob("*.yaml") if p.name not in expected]
    return sorted(stale + orphans)


def write(directory: Path = K8S_DIR) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    expected = expected_files()
    for orphan in directory.glob("*.yaml"):
        if orphan.name not in expected:
            orphan.unlink()
    for name, text in expected.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text, encoding="utf-8")
    return list(expected)


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "write":
        names = write()
        print(f"wrote {len(names)} files to {K8S_DIR.relative_to(REPO_ROOT)}")
        return 0
    stale = stale_files()
    if stale:
        print("stale manifests (run `python -m aidmesh_ops.k8s write`): " + ", ".join(stale))
        return 1
    print("Kubernetes manifests are current")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
