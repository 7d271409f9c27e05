-- Why a run failed: a failed run used to stay `running` until the next open.
ALTER TABLE runs ADD COLUMN error TEXT;
