//! Shared data between VMs, with Envoy's compare-and-swap rules.

mod common;

use common::{probe_request, probe_vm_with};
use wasm_host::{SharedData, VmOptions};

fn two_vms(store: &SharedData) -> (wasm_host::Vm, wasm_host::Vm) {
    let options = || VmOptions {
        shared: store.clone(),
        ..VmOptions::default()
    };
    (probe_vm_with(options(), ""), probe_vm_with(options(), ""))
}

fn op(vm: &mut wasm_host::Vm, ops: &str, header: &str) -> String {
    let r = vm.request(&probe_request(ops)).unwrap();
    r.header(header).unwrap().to_string()
}

#[test]
fn a_missing_key_is_not_found() {
    let store = SharedData::new();
    let (mut a, _) = two_vms(&store);
    // The SDK maps NotFound to (None, None).
    assert_eq!(op(&mut a, "shared-get:nope", "x-probe-shared"), "none");
}

#[test]
fn vms_sharing_a_store_see_each_others_writes_with_cas() {
    let store = SharedData::new();
    let (mut a, mut b) = two_vms(&store);
    assert_eq!(op(&mut a, "shared-set:k=one@0", "x-probe-shared-set"), "ok");
    assert_eq!(op(&mut b, "shared-get:k", "x-probe-shared"), "one@1");
    // Both read CAS 1; the first write with it wins, the second is a mismatch.
    assert_eq!(op(&mut b, "shared-set:k=two@1", "x-probe-shared-set"), "ok");
    assert_eq!(
        op(&mut a, "shared-set:k=three@1", "x-probe-shared-set"),
        "CasMismatch"
    );
    assert_eq!(op(&mut a, "shared-get:k", "x-probe-shared"), "two@2");
    // CAS 0 is unconditional.
    assert_eq!(
        op(&mut a, "shared-set:k=four@0", "x-probe-shared-set"),
        "ok"
    );
    assert_eq!(store.get("k"), Some((b"four".to_vec(), 3)));
    // A CAS on a missing key succeeds (Envoy only compares with an existing entry).
    assert_eq!(
        op(&mut a, "shared-set:fresh=x@77", "x-probe-shared-set"),
        "ok"
    );
}

#[test]
fn the_test_can_seed_and_read_the_store() {
    let store = SharedData::new();
    let cas = store.set("seeded", b"by-test");
    let (mut a, _) = two_vms(&store);
    assert_eq!(
        op(&mut a, "shared-get:seeded", "x-probe-shared"),
        format!("by-test@{cas}")
    );
    // Written at configure time by the probe.
    let _ = probe_vm_with(
        VmOptions {
            shared: store.clone(),
            ..VmOptions::default()
        },
        "shared=boot=yes",
    );
    assert_eq!(store.get("boot").map(|(v, _)| v), Some(b"yes".to_vec()));
    assert_eq!(store.keys(""), ["boot", "seeded"]);
}

#[test]
fn vm_ids_are_separate_namespaces() {
    let store = SharedData::new();
    let mut a = probe_vm_with(
        VmOptions {
            shared: store.clone(),
            vm_id: "one".into(),
            ..VmOptions::default()
        },
        "",
    );
    let mut b = probe_vm_with(
        VmOptions {
            shared: store.clone(),
            vm_id: "two".into(),
            ..VmOptions::default()
        },
        "",
    );
    assert_eq!(op(&mut a, "shared-set:k=a@0", "x-probe-shared-set"), "ok");
    assert_eq!(op(&mut b, "shared-get:k", "x-probe-shared"), "none");
    assert_eq!(
        store.get_in("one", "k").map(|(v, _)| v),
        Some(b"a".to_vec())
    );
}

#[test]
fn vms_and_modules_can_move_between_threads() {
    fn send_and_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_and_sync::<wasm_host::Module>();
    send_and_sync::<SharedData>();
    send::<wasm_host::Vm>();
}

#[test]
fn vms_on_several_threads_share_a_store() {
    let store = SharedData::new();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut vm = probe_vm_with(
                    VmOptions {
                        shared: store,
                        ..VmOptions::default()
                    },
                    "",
                );
                let ops = format!("shared-set:worker-{i}=here@0");
                vm.request(&probe_request(&ops)).unwrap();
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(store.keys("").len(), 4);
}
