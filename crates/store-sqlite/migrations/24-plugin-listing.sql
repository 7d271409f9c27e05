-- The plugin list without each plugin's component: the table keeps the component
-- before the columns added since, and reading those walked every page of it (about a
-- millisecond for the standard plugins, once for every rule a run prepares).
CREATE INDEX plugins_listed ON plugins
    (id, version, sha256, data_dir, data_dir_as_given, added_at, signer, signer_key);
