//! Dependency graphs over resource ids (petgraph): cycle detection, topological order,
//! and the DOT / Mermaid pictures of a blueprint.

use std::collections::{BTreeMap, HashMap};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

/// A directed graph where an edge `a → b` means "a depends on b".
pub struct DepGraph {
    pub graph: DiGraph<String, ()>,
    pub index: HashMap<String, NodeIndex>,
}

impl DepGraph {
    pub fn new(nodes: impl IntoIterator<Item = String>, edges: &[(String, String)]) -> Self {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        for n in nodes {
            index.entry(n.clone()).or_insert_with(|| graph.add_node(n));
        }
        for (a, b) in edges {
            if let (Some(&x), Some(&y)) = (index.get(a), index.get(b)) {
                graph.update_edge(x, y, ());
            }
        }
        DepGraph { graph, index }
    }

    /// Ids in an order where every id comes after everything it depends on,
    /// or the ids of one cycle.
    pub fn order(&self) -> Result<Vec<String>, Vec<String>> {
        match toposort(&self.graph, None) {
            Ok(mut order) => {
                order.reverse();
                Ok(order.into_iter().map(|i| self.graph[i].clone()).collect())
            }
            Err(_) => Err(cycles_of(&self.graph)
                .into_iter()
                .next()
                .unwrap_or_default()),
        }
    }
}

/// Every dependency cycle, each as the list of ids on it (in edge order).
pub fn cycles(
    nodes: impl IntoIterator<Item = String>,
    edges: &[(String, String)],
) -> Vec<Vec<String>> {
    cycles_of(&DepGraph::new(nodes, edges).graph)
}

fn cycles_of(graph: &DiGraph<String, ()>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for scc in tarjan_scc(graph) {
        let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
        if scc.len() < 2 && !self_loop {
            continue;
        }
        // Walk the cycle from its smallest id so the message reads in dependency order.
        let members: std::collections::HashSet<_> = scc.iter().copied().collect();
        let start = *scc.iter().min_by_key(|i| &graph[**i]).expect("non-empty");
        let mut path = vec![start];
        let mut cur = start;
        loop {
            let next = graph
                .neighbors(cur)
                .filter(|n| members.contains(n))
                .min_by_key(|n| (path.contains(n) && *n != start, graph[*n].clone()));
            match next {
                Some(n) if n != start && !path.contains(&n) => {
                    path.push(n);
                    cur = n;
                }
                _ => break,
            }
        }
        out.push(path.into_iter().map(|i| graph[i].clone()).collect());
    }
    out.sort();
    out
}

/// A node of a picture: its id and a label (the kind).
pub struct Node<'a> {
    pub id: &'a str,
    pub label: &'a str,
}

/// Graphviz DOT: `securecart graph bp | dot -Tsvg`.
pub fn to_dot(name: &str, nodes: &[Node], edges: &BTreeMap<String, Vec<String>>) -> String {
    let mut s = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n",
        esc(name)
    );
    for n in nodes {
        s.push_str(&format!(
            "  \"{}\" [label=\"{}\\n({})\"];\n",
            esc(n.id),
            esc(n.id),
            esc(n.label)
        ));
    }
    for (from, tos) in edges {
        for to in tos {
            // Arrows point from a dependency to what needs it: the order things are built.
            s.push_str(&format!("  \"{}\" -> \"{}\";\n", esc(to), esc(from)));
        }
    }
    s.push_str("}\n");
    s
}

/// Mermaid flowchart, for Markdown (the lab READMEs use it).
pub fn to_mermaid(nodes: &[Node], edges: &BTreeMap<String, Vec<String>>) -> String {
    let mut s = String::from("flowchart LR\n");
    for n in nodes {
        s.push_str(&format!(
            "  {}[\"{}<br/><small>{}</small>\"]\n",
            mid(n.id),
            n.id,
            n.label
        ));
    }
    for (from, tos) in edges {
        for to in tos {
            s.push_str(&format!("  {} --> {}\n", mid(to), mid(from)));
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mid(s: &str) -> String {
    s.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    #[test]
    fn orders_dependencies_first() {
        let g = DepGraph::new(
            ["subnet".into(), "vpc".into(), "rt".into()],
            &[e("subnet", "vpc"), e("rt", "subnet"), e("rt", "vpc")],
        );
        assert_eq!(g.order().unwrap(), vec!["vpc", "subnet", "rt"]);
    }

    #[test]
    fn names_every_resource_on_a_cycle() {
        let c = cycles(
            ["a".into(), "b".into(), "c".into(), "d".into()],
            &[e("a", "b"), e("b", "c"), e("c", "a"), e("d", "a")],
        );
        assert_eq!(c, vec![vec!["a".to_string(), "b".into(), "c".into()]]);
        let c = cycles(["x".into()], &[e("x", "x")]);
        assert_eq!(c, vec![vec!["x".to_string()]]);
    }

    #[test]
    fn pictures_draw_build_order() {
        let nodes = [
            Node {
                id: "vpc",
                label: "vpc",
            },
            Node {
                id: "sub-a",
                label: "subnet",
            },
        ];
        let edges = BTreeMap::from([("sub-a".to_string(), vec!["vpc".to_string()])]);
        assert!(to_dot("n", &nodes, &edges).contains("\"vpc\" -> \"sub-a\""));
        assert!(to_mermaid(&nodes, &edges).contains("vpc --> sub_a"));
    }
}
