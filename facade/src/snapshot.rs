//! The catalog as the request path sees it: the compiled route table and a pooled client per
//! service, swapped in whole when the catalog changes. A request loads it once, without a lock.

use std::collections::HashMap;
use std::sync::Arc;

use strangler_catalog::Catalog;
use strangler_services::{Origin, Upstream, UpstreamConfig};

use crate::body::RequestBody;
use crate::routes::RouteTable;

/// One compiled catalog.
pub(crate) struct Snapshot {
    pub version: i64,
    pub routes: RouteTable,
    /// The new services, by name.
    pub services: HashMap<Arc<str>, Upstream<RequestBody>>,
}

impl Snapshot {
    pub fn empty() -> Self {
        Self {
            version: 0,
            routes: RouteTable::empty(),
            services: HashMap::new(),
        }
    }

    /// Compiles `catalog`. Services whose origin did not change keep their pools (and their warm
    /// connections) from `previous`.
    pub fn compile(
        catalog: &Catalog,
        previous: &Snapshot,
        template: &UpstreamConfig,
    ) -> Result<Self, String> {
        let routes = RouteTable::compile(catalog)?;
        let mut services = HashMap::new();
        for svc in catalog.services.values() {
            // One instance for now; discovery and balancing across several come with the
            // services issue.
            let url = svc
                .urls
                .first()
                .ok_or_else(|| format!("service `{}` has no instance", svc.name))?;
            let origin = Origin::parse(url).map_err(|e| format!("service `{}`: {e}", svc.name))?;
            let name: Arc<str> = Arc::from(svc.name.as_str());
            let upstream = match previous.services.get(&name) {
                Some(existing) if existing.origin() == &origin => existing.clone(),
                _ => {
                    let mut config = template.clone();
                    config.origin = origin;
                    Upstream::new(&config)
                }
            };
            services.insert(name, upstream);
        }
        Ok(Self {
            version: catalog.version,
            routes,
            services,
        })
    }
}
