// Starts the page: wires each part and loads the collections.

import { resetThread, setUpAsk } from "./ask.js";
import { loadCollections, onPick, setUpCollections } from "./collections.js";
import { loadDocuments, setUpDocuments } from "./documents.js";
import { setUpSearch } from "./search.js";
import { setUpViewer } from "./viewer.js";

setUpViewer();
setUpCollections();
setUpDocuments();
setUpSearch();
setUpAsk();
onPick(() => { resetThread(); loadDocuments(); });
loadCollections();
