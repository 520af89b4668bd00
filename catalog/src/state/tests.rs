use super::MigrationState::*;

#[test]
fn forward_one_step_rollback_anywhere() {
    assert!(Legacy.can_move_to(Shadow));
    assert!(Shadow.can_move_to(Canary));
    assert!(Canary.can_move_to(Migrated));
    assert!(Migrated.can_move_to(Retired));
    assert!(!Legacy.can_move_to(Canary), "no skipping");
    assert!(!Shadow.can_move_to(Retired));
    assert!(!Canary.can_move_to(Retired), "retired only from migrated");
    for s in [Shadow, Canary, Migrated, Retired] {
        assert!(s.can_move_to(Legacy), "{s} rolls back");
    }
    assert!(!Legacy.can_move_to(Legacy));
    assert!(!Migrated.can_move_to(Canary), "no partial rollback");
}
