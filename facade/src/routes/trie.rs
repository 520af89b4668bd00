//! A segment trie of path patterns, whose lists hold route ranks (smaller is better).

use strangler_catalog::pattern::Segment;

#[derive(Debug, Default)]
pub(super) struct Node {
    /// Children by literal segment, sorted by text for a binary search: nodes have few children
    /// but for the first levels, and a search of sorted text needs no hasher.
    literals: Vec<(Box<str>, Node)>,
    param: Option<Box<Node>>,
    /// Routes whose pattern ends here, best first.
    exact: Vec<u32>,
    /// Routes whose wildcard starts here, best first.
    wildcard: Vec<u32>,
}

impl Node {
    /// Adds a route; callers insert in rank order, which keeps every list best first.
    pub(super) fn insert(&mut self, segments: &[Segment], rank: u32) {
        match segments.split_first() {
            None => self.exact.push(rank),
            Some((Segment::Wildcard(_), _)) => self.wildcard.push(rank),
            Some((Segment::Param(_), rest)) => {
                self.param
                    .get_or_insert_with(Box::default)
                    .insert(rest, rank);
            }
            Some((Segment::Literal(text), rest)) => {
                let i = match self.literals.binary_search_by(|(k, _)| (**k).cmp(text)) {
                    Ok(i) => i,
                    Err(i) => {
                        self.literals
                            .insert(i, (text.as_str().into(), Node::default()));
                        i
                    }
                };
                if let Some((_, child)) = self.literals.get_mut(i) {
                    child.insert(rest, rank);
                }
            }
        }
    }

    /// The best route under this node that matches `rest` (the path after this node's segment
    /// and its `/`; `None` once the path has ended) and that `accept` takes.
    ///
    /// Alternatives are tried in the order of the specificity rule — literal, parameter, the end
    /// of the path, wildcard — so the first route accepted is the best of the matching ones. Each
    /// node is reached by one path from the root, so a walk visits a node at most once and costs
    /// at most the nodes that match the request, however long the request's path.
    pub(super) fn find<F: FnMut(u32) -> bool>(
        &self,
        rest: Option<&str>,
        accept: &mut F,
    ) -> Option<u32> {
        let Some(rest) = rest else {
            return first(&self.exact, accept).or_else(|| first(&self.wildcard, accept));
        };
        let (segment, next) = match rest.split_once('/') {
            Some((segment, next)) => (segment, Some(next)),
            None => (rest, None),
        };
        if let Some(child) = self.literal(segment) {
            if let Some(found) = child.find(next, accept) {
                return Some(found);
            }
        }
        // A parameter needs a non-empty segment.
        if let Some(param) = self.param.as_deref().filter(|_| !segment.is_empty()) {
            if let Some(found) = param.find(next, accept) {
                return Some(found);
            }
        }
        first(&self.wildcard, accept)
    }

    fn literal(&self, segment: &str) -> Option<&Node> {
        let i = self
            .literals
            .binary_search_by(|(k, _)| (**k).cmp(segment))
            .ok()?;
        self.literals.get(i).map(|(_, n)| n)
    }
}

fn first<F: FnMut(u32) -> bool>(ranks: &[u32], accept: &mut F) -> Option<u32> {
    ranks.iter().copied().find(|&r| accept(r))
}
