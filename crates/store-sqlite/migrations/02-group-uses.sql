CREATE TABLE group_uses (
    grp TEXT NOT NULL,
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    PRIMARY KEY (grp, kind, entity)
);
