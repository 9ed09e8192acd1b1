//! The deployment files in `deploy/` and the Dockerfile, checked as far as this machine can:
//! they parse, every variable they give sync-server is a setting lancesync knows, the
//! Kubernetes objects name each other consistently, and the compose file's sync-server
//! environment, run as the container would run it (against moto's S3 in place of MinIO),
//! serves the probe paths the StatefulSet uses.
//! Run: cargo test --workspace --test deployment

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use lancesync_testkit::S3Server;
use lancesync_testkit::s3::{ACCESS_KEY, SECRET_KEY};
use serde::Deserialize;
use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn documents(relative: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{relative}: {e}")))
        .collect()
}

/// A variable sync-server reads: a setting (or an alias of one), or the log filter.
fn known(name: &str) -> bool {
    name == "RUST_LOG" || lancesync_config::spec::find(name).is_some()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The compose file's sync-server environment, `${VAR...}` interpolations given `values`.
fn compose_environment(
    relative: &str,
    values: &BTreeMap<&str, String>,
) -> BTreeMap<String, String> {
    let doc = &documents(relative)[0];
    let env = doc["services"]["sync-server"]["environment"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{relative}: sync-server has an environment map"));
    env.iter()
        .map(|(k, v)| {
            let key = text(k);
            let raw = text(v);
            let value = match raw.strip_prefix("${") {
                Some(rest) => {
                    let name = rest.split([':', '}']).next().expect("a variable name");
                    values
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| panic!("{relative}: no test value for {name}"))
                }
                None => raw,
            };
            (key, value)
        })
        .collect()
}

#[test]
fn compose_files_give_sync_server_only_settings_it_knows() {
    let values = BTreeMap::from([
        ("API_ADMIN_TOKEN", "t".to_string()),
        ("MINIO_ROOT_USER", "u".to_string()),
        ("MINIO_ROOT_PASSWORD", "p".to_string()),
    ]);
    for file in [
        "deploy/docker-compose.yml",
        "deploy/docker-compose.local.yml",
    ] {
        let doc = &documents(file)[0];
        let server = &doc["services"]["sync-server"];
        let dockerfile = text(&server["build"]["dockerfile"]);
        assert!(repo().join(&dockerfile).is_file(), "{file}: {dockerfile}");
        let env = compose_environment(file, &values);
        for key in env.keys() {
            assert!(known(key), "{file}: {key} is not a lancesync setting");
        }
        // The databases and the registry live in the volume.
        let mounts: Vec<String> = server["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| text(v).split(':').nth(1).unwrap().to_string())
            .collect();
        for key in ["LANCEDB_URI", "SYNC_STATE_DIR"] {
            assert!(
                mounts.iter().any(|m| env[key].starts_with(m.as_str())),
                "{file}: {key}={} is outside the volumes {mounts:?}",
                env[key]
            );
        }
        assert!(
            env.contains_key("API_ADMIN_TOKEN"),
            "{file}: the API needs a token to listen beyond loopback"
        );
    }
    // With MinIO: the bucket the one-shot service makes is the one sync-server uses, on the
    // MinIO service's address, with its credentials.
    let doc = &documents("deploy/docker-compose.yml")[0];
    let env = compose_environment("deploy/docker-compose.yml", &values);
    let setup = text(&doc["services"]["create-bucket"]["command"][0]);
    assert!(
        setup.contains(&format!(
            "mc mb --ignore-existing store/{}",
            env["S3_BUCKET"]
        )),
        "{setup}"
    );
    assert!(
        setup.contains("mc version enable"),
        "versioning, for restores of past versions"
    );
    assert_eq!(env["S3_ENDPOINT"], "http://minio:9000");
    assert_eq!(
        env["USE_S3_AS_PRIMARY"], "true",
        "the cloud web backend's mode"
    );
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], values["MINIO_ROOT_PASSWORD"]);
    assert_eq!(
        text(&doc["services"]["sync-server"]["depends_on"]["create-bucket"]["condition"]),
        "service_completed_successfully"
    );
}

#[test]
fn kubernetes_objects_name_each_other_and_set_only_known_settings() {
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for entry in std::fs::read_dir(repo().join("deploy/kubernetes")).unwrap() {
        let path = entry.unwrap().path();
        // cluster/ is the other way to run it (tested below).
        if path.is_dir() {
            continue;
        }
        let relative = path
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for doc in documents(&relative) {
            by_kind.entry(text(&doc["kind"])).or_default().push(doc);
        }
    }
    let one = |kind: &str| -> &Value {
        let docs = by_kind.get(kind).unwrap_or_else(|| panic!("no {kind}"));
        &docs[0]
    };
    let config = one("ConfigMap");
    assert_eq!(text(&config["data"]["USE_S3_AS_PRIMARY"]), "true");
    let secret = one("Secret");
    let set = one("StatefulSet");
    for (key, _) in config["data"]
        .as_mapping()
        .unwrap()
        .iter()
        .chain(secret["stringData"].as_mapping().unwrap())
    {
        assert!(
            known(&text(key)),
            "{} is not a lancesync setting",
            text(key)
        );
    }
    let pod = &set["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let sources: Vec<String> = container["envFrom"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| {
            let r = s
                .get("configMapRef")
                .or_else(|| s.get("secretRef"))
                .unwrap();
            text(&r["name"])
        })
        .collect();
    assert_eq!(
        sources,
        [
            text(&config["metadata"]["name"]),
            text(&secret["metadata"]["name"])
        ]
    );
    // The port the probes and services use is the one the server listens on.
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(port.to_string(), text(&config["data"]["API_PORT"]));
    assert_eq!(
        text(&container["livenessProbe"]["httpGet"]["path"]),
        "/health/live"
    );
    assert_eq!(
        text(&container["readinessProbe"]["httpGet"]["path"]),
        "/health/ready"
    );
    // The databases live in the claimed volume, and the user can write it.
    let mount = text(&container["volumeMounts"][0]["mountPath"]);
    let claim = text(&set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]);
    assert_eq!(text(&container["volumeMounts"][0]["name"]), claim);
    for key in ["LANCEDB_URI", "SYNC_STATE_DIR"] {
        assert!(text(&config["data"][key]).starts_with(&mount), "{key}");
    }
    let uid = pod["spec"]["securityContext"]["runAsUser"]
        .as_u64()
        .unwrap();
    assert_eq!(
        pod["spec"]["securityContext"]["fsGroup"].as_u64(),
        Some(uid)
    );
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("--uid {uid}")),
        "the image's user is uid {uid}"
    );
    assert!(
        container["resources"]["limits"]["memory"]
            .as_str()
            .is_some()
    );
    // Services select the pods, and the StatefulSet names its headless service.
    let labels = pod["metadata"]["labels"].as_mapping().unwrap();
    let services = &by_kind["Service"];
    for service in services {
        for (k, v) in service["spec"]["selector"].as_mapping().unwrap() {
            assert_eq!(
                labels.get(k),
                Some(v),
                "{}",
                text(&service["metadata"]["name"])
            );
        }
    }
    let headless = services
        .iter()
        .find(|s| s["spec"]["clusterIP"] == "None")
        .expect("a headless service");
    assert_eq!(
        text(&set["spec"]["serviceName"]),
        text(&headless["metadata"]["name"])
    );
}

#[test]
fn the_cluster_files_run_several_instances_on_one_s3_primary_and_postgres() {
    // Compose: three replicas of sync-server behind one port, every setting known, the
    // coordinator on the postgres service with its password, S3 as primary, no shared volume.
    let file = "deploy/docker-compose.cluster.yml";
    let doc = &documents(file)[0];
    let values = BTreeMap::from([
        ("API_ADMIN_TOKEN", "t".to_string()),
        ("MINIO_ROOT_USER", "u".to_string()),
        ("MINIO_ROOT_PASSWORD", "p".to_string()),
        ("POSTGRES_PASSWORD", "pg".to_string()),
    ]);
    let env = compose_environment(file, &values);
    for key in env.keys() {
        assert!(known(key), "{file}: {key} is not a lancesync setting");
    }
    let server = &doc["services"]["sync-server"];
    assert!(server["deploy"]["replicas"].as_u64().unwrap() >= 2);
    assert_eq!(env["USE_S3_AS_PRIMARY"], "true");
    let postgres = &doc["services"]["postgres"]["environment"];
    let url = text(&server["environment"]["COORDINATOR_URL"]);
    assert!(
        url.starts_with(&format!(
            "postgres://{}:${{POSTGRES_PASSWORD",
            text(&postgres["POSTGRES_USER"])
        )) && url.ends_with(&format!(
            "@postgres:5432/{}",
            text(&postgres["POSTGRES_DB"])
        )),
        "{url}"
    );
    assert_eq!(
        text(&server["depends_on"]["postgres"]["condition"]),
        "service_healthy"
    );
    // Each instance's replica and registry copy in a volume of its own.
    for volume in server["volumes"].as_sequence().unwrap() {
        assert!(
            !text(volume).contains(':'),
            "{file}: a shared volume {volume:?}"
        );
    }
    let balancer = &doc["services"]["balancer"];
    assert_eq!(text(&balancer["ports"][0]), "8000:8000");
    let conf = text(&doc["configs"]["balancer"]["content"]);
    assert!(conf.contains("server sync-server:8000"), "{conf}");

    // Kubernetes: a Deployment of several pods, no claimed volume, its settings known and
    // clustered, the coordinator's URL in the secret, the service selecting the pods.
    let mut by_kind: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for name in ["deployment.yaml", "configmap.yaml", "secret.yaml"] {
        for doc in documents(&format!("deploy/kubernetes/cluster/{name}")) {
            by_kind.entry(text(&doc["kind"])).or_default().push(doc);
        }
    }
    let deployment = &by_kind["Deployment"][0];
    let config = &by_kind["ConfigMap"][0];
    let secret = &by_kind["Secret"][0];
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() >= 2);
    assert!(deployment["spec"]["volumeClaimTemplates"].is_null());
    for (key, _) in config["data"]
        .as_mapping()
        .unwrap()
        .iter()
        .chain(secret["stringData"].as_mapping().unwrap())
    {
        assert!(
            known(&text(key)),
            "{} is not a lancesync setting",
            text(key)
        );
    }
    assert_eq!(text(&config["data"]["USE_S3_AS_PRIMARY"]), "true");
    assert!(
        config["data"]["COORDINATOR_URL"].is_null(),
        "the URL has a password"
    );
    assert!(text(&secret["stringData"]["COORDINATOR_URL"]).starts_with("postgres://"));
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let refs: Vec<String> = container["envFrom"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| {
            text(
                &s.get("configMapRef")
                    .or_else(|| s.get("secretRef"))
                    .unwrap()["name"],
            )
        })
        .collect();
    assert_eq!(
        refs,
        [
            text(&config["metadata"]["name"]),
            text(&secret["metadata"]["name"])
        ]
    );
    let takeover: u64 = text(&config["data"]["COORDINATOR_TAKEOVER_SECS"])
        .parse()
        .unwrap();
    assert!(
        pod["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap()
            < takeover,
        "a stopping pod is gone before its users would be taken over"
    );
    let labels = pod["metadata"]["labels"].as_mapping().unwrap();
    let service = &by_kind["Service"][0];
    for (k, v) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(labels.get(k), Some(v));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_environment_runs_and_answers_the_kubernetes_probes() {
    let s3 = S3Server::start();
    s3.create_bucket("lancesync").await;
    let work = tempfile::tempdir().unwrap();
    let values = BTreeMap::from([
        ("API_ADMIN_TOKEN", "deployment-test-admin-token".to_string()),
        ("MINIO_ROOT_USER", ACCESS_KEY.to_string()),
        ("MINIO_ROOT_PASSWORD", SECRET_KEY.to_string()),
    ]);
    let mut env = compose_environment("deploy/docker-compose.yml", &values);
    // What differs from the container: moto stands in for MinIO, a temp dir for the volume,
    // and a free port for 8000.
    env.insert("S3_ENDPOINT".into(), s3.endpoint());
    env.insert(
        "LANCEDB_URI".into(),
        work.path().join("lancedb").display().to_string(),
    );
    env.insert(
        "SYNC_STATE_DIR".into(),
        work.path().join("sync_state").display().to_string(),
    );
    env.insert("API_PORT".into(), "0".into());
    let mut command = Command::new(env!("CARGO_BIN_EXE_sync-server"));
    command
        .current_dir(work.path())
        .env_clear()
        .env("HOME", work.path())
        .envs(&env)
        .env("LOG_FORMAT", "text");
    let server = lancesync_testkit::cli::start_server(command);
    assert!(
        !server.base.contains("127.0.0.1"),
        "with a token it serves beyond loopback: {}",
        server.base
    );

    let set = documents("deploy/kubernetes/statefulset.yaml").remove(0);
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    let client = reqwest::Client::new();
    let port = server.base.rsplit(':').next().unwrap();
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = text(&container[probe]["httpGet"]["path"]);
        let answer = client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status().as_u16(),
            200,
            "{probe} {path}: {}",
            answer.text().await.unwrap()
        );
    }
    let health: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        health.to_string().contains("s3_primary_local_cache"),
        "the compose file's mode: {health}"
    );
}
