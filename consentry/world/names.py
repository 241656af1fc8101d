"""Word lists for the synthetic world: Dutch and English first and last names, towns,
pages people like and post templates.

Plain tuples, no Django. The generator indexes into them with numpy, so their ORDER is
part of a world's identity: appending keeps old seeds' names only for indices that
existed, and reordering changes every world. Treat edits as changing all seeds.
Town tuples are ordered largest first; the generator gives earlier towns more people.
"""

from __future__ import annotations

DUTCH_FIRST_NAMES: tuple[str, ...] = (
    "Daan", "Sem", "Lucas", "Levi", "Finn", "Milan", "Bram", "Jesse", "Thijs", "Ruben",
    "Lars", "Sven", "Jens", "Stijn", "Koen", "Joris", "Pieter", "Willem", "Jan", "Kees",
    "Henk", "Gerrit", "Maarten", "Wouter", "Floris", "Teun", "Niels", "Joost", "Bas",
    "Tim", "Emma", "Julia", "Sophie", "Tess", "Zoë", "Sanne", "Lotte", "Anouk", "Femke",
    "Fleur", "Iris", "Lieke", "Marieke", "Noor", "Evi", "Saar", "Roos", "Ilse", "Esther",
    "Ingrid", "Annelies", "Gerda", "Wilma", "Marloes", "Hanneke", "Janneke", "Maud",
    "Nienke", "Eline", "Dewi",
)  # fmt: skip

DUTCH_LAST_NAMES: tuple[str, ...] = (
    "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen",
    "Visser", "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters",
    "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "Smits",
    "de Graaf", "van der Meer", "van der Linden", "Kok", "Jacobs", "de Haan", "Vermeulen",
    "van den Heuvel", "van der Veen", "van den Broek", "de Bruijn", "de Bruin",
    "van der Heijden", "Schouten", "van Beek", "Willems", "van Vliet", "van de Ven",
    "Hoekstra", "Maas", "Verhoeven", "Koster", "van Dam", "van der Wal", "Prins",
    "Blom", "Huisman", "Peeters", "de Lange", "Kuipers", "van Wijk", "Postma", "Kramer",
    "Hermans", "Schipper", "Veenstra", "Timmermans",
)  # fmt: skip

ENGLISH_FIRST_NAMES: tuple[str, ...] = (
    "Oliver", "George", "Harry", "Jack", "Jacob", "Noah", "Charlie", "Thomas", "Oscar",
    "William", "James", "Henry", "Leo", "Alfie", "Joshua", "Freddie", "Archie", "Ethan",
    "Isaac", "Alexander", "Daniel", "Samuel", "Joseph", "Edward", "Max", "Benjamin",
    "David", "Michael", "Peter", "Richard", "Olivia", "Amelia", "Isla", "Ava", "Emily",
    "Isabella", "Mia", "Poppy", "Ella", "Lily", "Grace", "Sophia", "Evie", "Charlotte",
    "Jessica", "Alice", "Florence", "Freya", "Ruby", "Hannah", "Lucy", "Sarah", "Rachel",
    "Rebecca", "Elizabeth", "Margaret", "Susan", "Helen", "Claire", "Megan",
)  # fmt: skip

ENGLISH_LAST_NAMES: tuple[str, ...] = (
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson",
    "Thomas", "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White",
    "Edwards", "Hughes", "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson",
    "Wood", "Turner", "Martin", "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark",
    "Lee", "King", "Baker", "Harrison", "Morgan", "Allen", "James", "Scott", "Phillips",
    "Watson", "Davis", "Parker", "Price", "Bennett", "Young", "Griffiths", "Mitchell",
    "Kelly", "Cook", "Carter", "Richardson", "Bailey", "Collins", "Bell", "Shaw", "Murphy",
)  # fmt: skip

DUTCH_TOWNS: tuple[str, ...] = (
    "Amsterdam", "Rotterdam", "Den Haag", "Utrecht", "Eindhoven", "Groningen", "Tilburg",
    "Almere", "Breda", "Nijmegen", "Apeldoorn", "Arnhem", "Haarlem", "Enschede",
    "Amersfoort", "Zaanstad", "Den Bosch", "Zwolle", "Leiden", "Maastricht", "Dordrecht",
    "Ede", "Leeuwarden", "Alkmaar", "Delft", "Deventer", "Venlo", "Hilversum", "Heerlen",
    "Helmond", "Oss", "Gouda", "Assen", "Middelburg", "Vlissingen", "Harderwijk", "Sneek",
    "Zutphen", "Den Helder", "Hoorn",
)  # fmt: skip

ENGLISH_TOWNS: tuple[str, ...] = (
    "London", "Birmingham", "Manchester", "Leeds", "Liverpool", "Sheffield", "Bristol",
    "Newcastle upon Tyne", "Nottingham", "Leicester", "Brighton", "Southampton",
    "Portsmouth", "Plymouth", "Reading", "Coventry", "Bradford", "Hull", "Stoke-on-Trent",
    "Derby", "Wolverhampton", "Norwich", "Oxford", "Cambridge", "York", "Exeter",
    "Bath", "Canterbury", "Ipswich", "Lincoln", "Chester", "Durham", "Carlisle",
    "Winchester", "Salisbury", "Worcester", "Lancaster", "Colchester", "Gloucester",
    "Truro",
)  # fmt: skip

# Pages and interests people like; earlier entries are liked more (Zipf-like).
PAGES: tuple[str, ...] = (
    "Music", "Travel", "Football", "Cooking", "Movies", "Photography", "Reading",
    "Cycling", "Running", "Coffee", "Hiking", "Gardening", "Netflix", "Yoga", "Gaming",
    "Ajax", "Feyenoord", "PSV", "Manchester United", "Liverpool FC", "Arsenal",
    "Chelsea FC", "Tottenham Hotspur", "Oranje", "England Football", "Formula 1",
    "Max Verstappen", "Lewis Hamilton", "Tennis", "Golf", "Cricket", "Hockey",
    "Speed skating", "Swimming", "Sailing", "Jazz", "Classical music", "Hip hop",
    "Rock", "Techno", "Dutch cheese", "Stroopwafels", "Fish and chips", "Tea", "Beer",
    "Wine", "Vegan food", "Baking", "Dogs", "Cats", "Horses", "Birdwatching", "Art",
    "Van Gogh Museum", "Rijksmuseum", "British Museum", "Theatre", "Stand-up comedy",
    "Podcasts", "Science", "Space", "History", "Politics", "Climate action", "Board games",
    "Chess", "Knitting", "Fashion", "Interior design", "Cars", "Motorbikes",
    "Camping", "Festivals", "Glastonbury", "Lowlands", "Pinkpop", "Eurovision",
    "King's Day", "Sinterklaas", "Christmas markets",
)  # fmt: skip

POST_TEMPLATES_EN: tuple[str, ...] = (
    "Lovely day in {city} today.",
    "Anyone up for {like} this weekend?",
    "Just finished a great book about {like}.",
    "Back home in {hometown} for the holidays.",
    "Can't believe how much I love {like}.",
    "Rain again in {city}. Typical.",
    "Happy birthday to my best friend!",
    "New job, new city: hello {city}!",
    "Who else is watching the match tonight?",
    "Coffee first, questions later.",
)

POST_TEMPLATES_NL: tuple[str, ...] = (
    "Heerlijke dag in {city} vandaag.",
    "Wie gaat er dit weekend mee {like}?",
    "Net een mooi boek uit over {like}.",
    "Weer even thuis in {hometown}.",
    "Ik word echt blij van {like}.",
    "Alweer regen in {city}. Typisch.",
    "Gefeliciteerd aan mijn beste vriendin!",
    "Nieuwe baan, nieuwe stad: hallo {city}!",
    "Wie kijkt er vanavond ook naar de wedstrijd?",
    "Eerst koffie, dan praten.",
)
