-- Issue 14: Dokploy answers a deploy with no id and rewrites the deployment's
-- title when the build ends, so shipbot pins the deploymentId it identified
-- (from the ids listed before the POST) and the commit Dokploy built.
CREATE TABLE dokploy_deployments (
    app           TEXT NOT NULL,
    env           TEXT NOT NULL,
    release       TEXT NOT NULL,
    posted        TEXT NOT NULL,           -- when shipbot POSTed the deploy (RFC 3339, UTC)
    before_ids    TEXT NOT NULL DEFAULT '[]', -- JSON array: deploymentIds listed just before the POST
    deployment_id TEXT NOT NULL DEFAULT '',   -- '' until identified
    ref           TEXT NOT NULL DEFAULT '',   -- the branch or tag Dokploy was set to build
    sha           TEXT NOT NULL DEFAULT '',   -- from the row's "Commit: <sha>"
    PRIMARY KEY (app, env, release)
);
CREATE INDEX dokploy_deployments_by_id ON dokploy_deployments (app, env, deployment_id);
