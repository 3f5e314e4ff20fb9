// Third-party check for tests: reads [{root, uid, proof}] on stdin and prints, for each,
// whether @openzeppelin/merkle-tree's StandardMerkleTree.verify accepts it.
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const items = JSON.parse(input);
  const out = items.map(({ root, uid, proof }) => StandardMerkleTree.verify(root, ["bytes32"], [uid], proof));
  process.stdout.write(JSON.stringify(out));
});
