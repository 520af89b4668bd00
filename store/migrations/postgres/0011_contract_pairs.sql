-- Matched exchanges, redacted: a request and the answer legacy gave, which the new service
-- matched. The latest few distinct ones per route are kept, to export as contract tests.
CREATE TABLE contract_pairs (
    id BIGSERIAL PRIMARY KEY,
    context TEXT NOT NULL,
    route TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    method TEXT NOT NULL,
    uri TEXT NOT NULL,
    request_type TEXT,
    request_body TEXT NOT NULL,
    status BIGINT NOT NULL,
    response_type TEXT,
    response_body TEXT NOT NULL
);
CREATE INDEX contract_pairs_route ON contract_pairs (context, route, id);
