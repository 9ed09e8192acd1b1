//! Backend-location detection: is this backend running in a cloud or on a local machine?
//!
//! A pure function of the explicit setting and an environment map, reporting what decided.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Where the backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendLocation {
    /// A cloud platform: S3 storage is expected.
    Cloud,
    /// A developer machine, desktop or on-premises server.
    Local,
}

impl BackendLocation {
    /// The word used in settings.
    pub fn as_str(&self) -> &'static str {
        match self {
            BackendLocation::Cloud => "cloud",
            BackendLocation::Local => "local",
        }
    }
}

impl fmt::Display for BackendLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendLocation {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "cloud" => Ok(BackendLocation::Cloud),
            "local" => Ok(BackendLocation::Local),
            _ => Err(()),
        }
    }
}

/// An environment variable whose presence means a cloud platform runs this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CloudIndicator {
    /// The variable.
    pub variable: &'static str,
    /// The platform that sets it.
    pub platform: &'static str,
}

const fn indicator(variable: &'static str, platform: &'static str) -> CloudIndicator {
    CloudIndicator { variable, platform }
}

/// The cloud indicators, checked in this order: the seed's list plus the variables those
/// platforms document today (`K_SERVICE` for Cloud Run, `ECS_CONTAINER_METADATA_URI_V4`,
/// `RAILWAY_ENVIRONMENT`).
pub const CLOUD_INDICATORS: &[CloudIndicator] = &[
    indicator("LAMBDA_TASK_ROOT", "AWS Lambda"),
    indicator("AWS_LAMBDA_FUNCTION_NAME", "AWS Lambda"),
    indicator("FUNCTION_NAME", "Google Cloud Functions"),
    indicator("FUNCTION_TARGET", "Google Cloud Functions"),
    indicator("WEBSITE_SITE_NAME", "Azure Functions"),
    indicator("WEBSITE_INSTANCE_ID", "Azure Functions"),
    indicator("KUBERNETES_SERVICE_HOST", "Kubernetes"),
    indicator("ECS_CONTAINER_METADATA_URI", "Amazon ECS"),
    indicator("ECS_CONTAINER_METADATA_URI_V4", "Amazon ECS"),
    indicator("CLOUD_RUN", "Google Cloud Run"),
    indicator("K_SERVICE", "Google Cloud Run"),
    indicator("VERCEL", "Vercel"),
    indicator("RAILWAY_STATIC_URL", "Railway"),
    indicator("RAILWAY_ENVIRONMENT", "Railway"),
];

/// What decided the backend location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum LocationReason {
    /// `BACKEND_LOCATION` was set.
    Explicit,
    /// A cloud platform's variable is present.
    Indicator {
        /// The indicator found first.
        #[serde(flatten)]
        indicator: CloudIndicator,
    },
    /// No cloud platform's variable is present.
    NoIndicator,
}

/// The detected location and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendDetection {
    /// Where the backend runs.
    pub location: BackendLocation,
    /// What decided it.
    pub reason: LocationReason,
}

impl fmt::Display for BackendDetection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            LocationReason::Explicit => write!(
                f,
                "{} (BACKEND_LOCATION={} was set)",
                self.location, self.location
            ),
            LocationReason::Indicator { indicator } => {
                write!(
                    f,
                    "{} ({} is set: {})",
                    self.location, indicator.variable, indicator.platform
                )
            }
            LocationReason::NoIndicator => {
                write!(f, "{} (no cloud platform variable is set)", self.location)
            }
        }
    }
}

/// Decide the backend location: an explicit setting wins; otherwise the first cloud indicator
/// present in `env` (even with an empty value, as the platforms may set it so) means cloud;
/// otherwise local.
pub fn detect_backend_location(
    explicit: Option<BackendLocation>,
    env: &BTreeMap<String, String>,
) -> BackendDetection {
    if let Some(location) = explicit {
        return BackendDetection {
            location,
            reason: LocationReason::Explicit,
        };
    }
    match CLOUD_INDICATORS
        .iter()
        .find(|i| env.contains_key(i.variable))
    {
        Some(indicator) => BackendDetection {
            location: BackendLocation::Cloud,
            reason: LocationReason::Indicator {
                indicator: *indicator,
            },
        },
        None => BackendDetection {
            location: BackendLocation::Local,
            reason: LocationReason::NoIndicator,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_indicator_means_cloud() {
        for ind in CLOUD_INDICATORS {
            let d = detect_backend_location(None, &env(&[(ind.variable, "x"), ("HOME", "/root")]));
            assert_eq!(d.location, BackendLocation::Cloud, "{}", ind.variable);
            assert_eq!(d.reason, LocationReason::Indicator { indicator: *ind });
            assert!(d.to_string().contains(ind.variable));
        }
    }

    #[test]
    fn the_seed_indicators_are_all_there() {
        for var in [
            "LAMBDA_TASK_ROOT",
            "AWS_LAMBDA_FUNCTION_NAME",
            "FUNCTION_NAME",
            "FUNCTION_TARGET",
            "WEBSITE_SITE_NAME",
            "WEBSITE_INSTANCE_ID",
            "KUBERNETES_SERVICE_HOST",
            "ECS_CONTAINER_METADATA_URI",
            "CLOUD_RUN",
            "VERCEL",
            "RAILWAY_STATIC_URL",
        ] {
            assert!(CLOUD_INDICATORS.iter().any(|i| i.variable == var), "{var}");
        }
    }

    #[test]
    fn an_empty_indicator_still_counts() {
        let d = detect_backend_location(None, &env(&[("VERCEL", "")]));
        assert_eq!(d.location, BackendLocation::Cloud);
    }

    #[test]
    fn no_indicator_means_local() {
        let d = detect_backend_location(
            None,
            &env(&[
                ("HOME", "/root"),
                ("PATH", "/bin"),
                ("AWS_REGION", "eu-west-1"),
            ]),
        );
        assert_eq!(
            d,
            BackendDetection {
                location: BackendLocation::Local,
                reason: LocationReason::NoIndicator
            }
        );
        assert_eq!(d.to_string(), "local (no cloud platform variable is set)");
    }

    #[test]
    fn explicit_wins_both_ways() {
        let cloud_env = env(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]);
        let d = detect_backend_location(Some(BackendLocation::Local), &cloud_env);
        assert_eq!(
            d,
            BackendDetection {
                location: BackendLocation::Local,
                reason: LocationReason::Explicit
            }
        );

        let d = detect_backend_location(Some(BackendLocation::Cloud), &env(&[]));
        assert_eq!(
            d,
            BackendDetection {
                location: BackendLocation::Cloud,
                reason: LocationReason::Explicit
            }
        );
        assert_eq!(d.to_string(), "cloud (BACKEND_LOCATION=cloud was set)");
    }

    #[test]
    fn the_first_indicator_in_order_is_reported() {
        let d = detect_backend_location(
            None,
            &env(&[("VERCEL", "1"), ("KUBERNETES_SERVICE_HOST", "h")]),
        );
        assert_eq!(
            d.reason,
            LocationReason::Indicator {
                indicator: indicator("KUBERNETES_SERVICE_HOST", "Kubernetes")
            }
        );
    }
}
