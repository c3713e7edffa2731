module imgscan.test/goracle

go 1.19
