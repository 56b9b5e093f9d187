//! The hub's stated memory ceiling counts every table it allocates: what
//! `Hub::bind` holds once it returns (bytes allocated minus freed, counted by
//! the allocator) is at most the ceiling's `tables`, and not far below it (so
//! the figure is a tight bound, not a guess that happens to be large).

use poselink::hub::{Hub, HubConfig};

use crate::counting;

fn check(what: &str, cfg: HubConfig) {
    let _turn = counting::turn();
    counting::this_thread(true);
    let before = counting::held_bytes();
    let hub = Hub::bind(cfg).expect("the hub binds");
    let held = counting::held_bytes().wrapping_sub(before);
    counting::this_thread(false);
    let tables = hub.memory_ceiling().tables;
    assert!(
        held <= tables,
        "{what}: the hub holds {held} bytes after start-up, more than the {tables} bytes of tables its ceiling counts"
    );
    assert!(
        held * 100 >= tables * 90,
        "{what}: the hub holds {held} bytes after start-up, under 90 % of the {tables} bytes its ceiling counts: the figure is too loose"
    );
    drop(hub);
}

#[test]
fn the_ceiling_counts_every_table_the_hub_allocates() {
    let base = HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..HubConfig::local_dev()
    };
    check("defaults", base.clone());
    check(
        "small board",
        HubConfig {
            max_connections: 16,
            max_rooms: 8,
            queue_depth: 16,
            ..base.clone()
        },
    );
    check(
        "big messages, deep queues",
        HubConfig {
            max_connections: 64,
            max_message: 64 * 1024,
            queue_depth: 512,
            control_buffer: 128 * 1024,
            ..base
        },
    );
}
