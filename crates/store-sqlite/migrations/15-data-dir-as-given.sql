-- A plugin's data directory is kept as an absolute path, which is what the plugin is
-- given from any working directory; this keeps it as the operator wrote it too, to
-- show back. Plugins added before show the absolute path.
ALTER TABLE plugins ADD COLUMN data_dir_as_given TEXT;
