// Third-party oracle for tests: reads {"trees": [[uid, ...], ...]} on stdin and prints,
// per tree, the root and every proof as computed by @openzeppelin/merkle-tree itself.
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const { trees } = JSON.parse(input);
  const out = trees.map((uids) => {
    const tree = StandardMerkleTree.of(
      uids.map((u) => [u]),
      ["bytes32"],
    );
    const proofs = {};
    for (const [i, [uid]] of tree.entries()) proofs[uid] = tree.getProof(i);
    return { root: tree.root, proofs };
  });
  process.stdout.write(JSON.stringify(out));
});
