//! What the node's cluster tests share: the processes a test started, killed by the pids it
//! spawned however the test ends.
#![allow(dead_code)]

use std::process::Child;

use hashmesh_testnet::Cluster;

/// A generated cluster, the children started for it and its directory.
pub struct Processes {
    pub cluster: Cluster,
    pub children: Vec<Child>,
    pub _dir: tempfile::TempDir,
}

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill(); // by the pid we spawned
            let _ = c.wait();
        }
    }
}
