-- The operator's budget per plugin (fuel, memory, deadline per call), by plugin id so
-- that it holds for every version: a PluginBudget as JSON.
CREATE TABLE plugin_budgets (
    id TEXT PRIMARY KEY,
    budget TEXT NOT NULL
);
