//! One instance of a cluster (a coordinator on a real PostgreSQL server): what `/health` and
//! `/metrics` tell of the coordinator.

use std::sync::Arc;
use std::time::Duration;

use lancesync_coordinator::{CoordinatorOptions, PostgresCoordinator};
use lancesync_testkit::Postgres;

use crate::common::{ADMIN, ALICE, server_coordinated};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_show_the_coordinator() {
    let pg = Postgres::start();
    let coordinator = PostgresCoordinator::connect(CoordinatorOptions {
        takeover: Duration::from_secs(4),
        instance_id: Some("api-1".into()),
        ..CoordinatorOptions::new(pg.url())
    })
    .await
    .unwrap();
    let (s, _orchestrator) = server_coordinated(Arc::new(coordinator)).await;

    // A write holds the user: a document sent to the API.
    let put = s
        .post(
            "/api/v1/sync/manual",
            Some(ALICE),
            serde_json::json!({ "filename": "plan.txt", "text": "Held while it is written." }),
        )
        .await;
    assert!(put.status.is_success(), "{} {}", put.status, put.text);

    let health = s.get("/health", Some(ADMIN)).await.json();
    let coordinator = &health["components"]["coordinator"];
    assert_eq!(coordinator["status"], "healthy", "{health}");
    let message = coordinator["message"].as_str().unwrap();
    assert!(message.contains("instance api-1"), "{message}");
    assert!(
        !message.contains("postgres://") && !message.contains("alice"),
        "no address of the coordinator, no user's name (probes read it without a token): {message}"
    );
    assert!(message.contains("user(s)"), "{message}");

    let metrics = s.get("/metrics", Some(ADMIN)).await.text;
    assert!(
        metrics.contains("lancesync_coordinator_reachable{instance=\"api-1\"} 1"),
        "{metrics}"
    );
    let statements: u64 = metrics
        .lines()
        .find(|l| l.starts_with("lancesync_coordinator_statements_total "))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a statements counter: {metrics}"));
    assert!(
        statements >= 3,
        "the schema, the hold and its release: {statements}"
    );
    assert!(
        metrics.contains("lancesync_cluster_queue_depth "),
        "{metrics}"
    );
}
